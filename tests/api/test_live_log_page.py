"""The live log page `GET /jobs/{id}`: nothing without a signed link or a token; the Slack job
message's Live log button hands the clicker a link made for them; and, in a real headless
Chromium, the page shows a running job's new lines without a reload and its final status.

The worker is played by the test: it writes `job_logs` rows and the job's status into the
real database, as the worker's log sink and execution do."""

from __future__ import annotations

import re
import shutil
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import update

from core.log_links import SALT, LogLinks
from db.base import utcnow
from db.models import Job, JobLog, JobStatus, LogLevel, User
from db.session import transaction
from slackui import ids
from tests.conftest import _unavailable
from tests.handlers.fixtures import OPERATOR, VIEWER
from tests.handlers.harness import SIGNING_SECRET

PUBLIC = "https://playbot.example.com"
LINKS = pytest.mark.parametrize("slack_settings", [{"playbot_public_url": PUBLIC}])


def launch(api) -> str:
    return api.post("/api/jobs", {"playbook": "ping", "target": "local"},
                    token=api.token("alice")).body["jobs"][0]["id"]


def worker_writes(api, job_id: str, lines: list[str], start: int, **values) -> None:
    job = api.harness.job(job_id)
    with transaction(api.harness.session_factory) as session:
        for offset, text in enumerate(lines):
            session.add(JobLog(job_id=job.id, line_number=start + offset, content=text,
                               log_level=LogLevel.INFO))
        if values:
            session.execute(update(Job).where(Job.id == job.id).values(**values))


def link_for(api, job_id: str, username: str, *, age: timedelta | None = None) -> str:
    """A link as the Live log button makes it; `age`: one made that long ago."""
    with api.harness.session_factory() as session:
        user = session.query(User).filter_by(username=username).one()
    if age is None:
        return LogLinks(SIGNING_SECRET).sign(job_id, user.id)

    class MadeEarlier(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age.total_seconds())

    return URLSafeTimedSerializer(SIGNING_SECRET, salt=SALT, signer=MadeEarlier).dumps(
        [job_id, user.id])


def test_the_page_shows_nothing_without_a_link_or_token(api):
    job_id = launch(api)

    bare = api.get(f"/jobs/{job_id}")
    forged = api.get(f"/jobs/{job_id}?link=not-a-real-link")

    assert bare.status == 401 and forged.status == 401
    assert job_id not in bare.body and "ping" not in bare.body
    assert "not valid" in forged.body


@LINKS
def test_the_live_log_button_answers_the_clicker_with_a_link_made_for_them(api, slack):
    job_id = launch(api)

    result = slack.click(ids.ACTION_LIVE_LOG, api.harness.job(job_id).run_id, user=VIEWER)

    [reply] = result.replies
    assert "for you only" in reply.text
    [url] = re.findall(r"<(https://playbot\.example\.com/jobs/[^|>]+)\|local>", reply.text)
    parts = urlsplit(url.replace("&amp;", "&"))
    assert parts.path == f"/jobs/{job_id}"
    page = api.get(f"{parts.path}?{parts.query}")
    assert page.status == 200 and f'data-job="{job_id}"' in page.body
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "script-src 'sha256-" in page.headers["Content-Security-Policy"]
    # the link works as the viewer who clicked, for this job's log only
    link = parse_qs(parts.query)["link"][0]
    logs = api.get(f"/api/jobs/{job_id}/logs", headers={"X-Playbot-Link": link})
    assert logs.status == 200
    [row] = api.harness.audit("log.view")
    assert row.user_id == api.harness.user(VIEWER).id and row.details["using"] == "live log link"
    assert api.get("/api/jobs", headers={"X-Playbot-Link": link}).status == 401


def test_without_a_public_url_the_button_says_how_to_set_one_up(api, slack):
    job_id = launch(api)

    result = slack.click(ids.ACTION_LIVE_LOG, api.harness.job(job_id).run_id, user=OPERATOR)

    assert "PLAYBOT_PUBLIC_URL" in result.replies[0].text


def test_a_link_opens_only_its_own_job_and_stops_when_it_expires_or_its_user_is_deactivated(
        api):
    job_id = launch(api)
    other = api.post("/api/jobs", {"playbook": "ping", "target": "stage-01"},
                     token=api.token("alice")).body["jobs"][0]["id"]
    link = link_for(api, job_id, "victor")
    expired = link_for(api, job_id, "victor", age=timedelta(minutes=61))  # links last 60

    assert api.get(f"/jobs/{other}?link={link}").status == 401
    assert api.get(f"/api/jobs/{other}/logs", headers={"X-Playbot-Link": link}).status == 401
    late = api.get(f"/api/jobs/{job_id}/logs", headers={"X-Playbot-Link": expired})
    assert late.status == 401 and "expired" in late.detail
    with transaction(api.harness.session_factory) as session:
        session.execute(update(User).where(User.username == "victor").values(is_active=False))
    assert api.get(f"/jobs/{job_id}?link={link}").status == 403


def test_a_token_opens_the_page_and_makes_links(api):
    job_id = launch(api)
    token = api.token("victor")

    page = api.get(f"/jobs/{job_id}", token=token)
    made = api.post(f"/api/jobs/{job_id}/link", token=token)

    assert page.status == 200 and 'data-link="' in page.body
    assert made.status == 200 and made.body["url"].startswith(f"/jobs/{job_id}?link=")
    assert api.get(made.body["url"]).status == 200


# the page in a real browser --------------------------------------------------------------


@pytest.fixture
def browser():
    """Debian's headless Chromium driven by selenium through chromedriver."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        _unavailable("chromium / chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def lines(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#log .line")]


def text_of(driver, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text


def wait_for(condition, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("the page did not get there in time")


@pytest.mark.slow
@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_the_page_follows_a_running_job_without_a_reload_and_shows_how_it_ended(api, browser):
    job_id = launch(api)
    worker_writes(api, job_id, ["PLAY [all] ***", "TASK [ping] ***"], 1,
                  status=JobStatus.running, started_at=utcnow())
    link = link_for(api, job_id, "victor")

    browser.get(f"{api.url}/jobs/{job_id}?link={link}")
    wait_for(lambda: lines(browser) == ["PLAY [all] ***", "TASK [ping] ***"])
    assert text_of(browser, "status") == "running"
    assert text_of(browser, "host") == "local (development)"
    browser.execute_script("window.sameDocument = true;")

    worker_writes(api, job_id, ["ok: [local]", "PLAY RECAP ***"], 3)
    wait_for(lambda: len(lines(browser)) == 4)
    worker_writes(api, job_id, [], 5, status=JobStatus.success, completed_at=utcnow(),
                  recap={"hosts": {"local": {"ok": 1, "changed": 0, "failed": 0}},
                         "tasks": 1})

    wait_for(lambda: text_of(browser, "status") == "success")
    wait_for(lambda: "ended" in text_of(browser, "notice"))
    assert lines(browser)[2:] == ["ok: [local]", "PLAY RECAP ***"]
    assert "local: ok 1" in text_of(browser, "recap")
    assert text_of(browser, "completed") != "–"
    assert browser.execute_script("return window.sameDocument === true;")  # never reloaded
