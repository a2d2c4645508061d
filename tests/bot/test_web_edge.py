"""The HTTP edge of `/slack/events`, tried with hostile requests against the real web server
(waitress on loopback): oversized bodies, malformed bodies, bad timestamps, forged
signatures, events and actions nobody handles. Each test asserts the status, the reply, that
nothing was written or sent, and what reached the log."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from bot.fake_slack import FakeSlack, sign_request
from bot.web import MAX_BODY_BYTES, EscapingLogFilter, loggable
from slackui import ids
from tests.handlers.fixtures import *  # noqa: F403 - the Slack app fixtures
from tests.handlers.fixtures import OPERATOR
from tests.handlers.harness import SIGNING_SECRET

FORM = "application/x-www-form-urlencoded"


def post(url: str, body: bytes | str, content_type: str = FORM, *,
         headers: dict[str, str] | None = None, signed: bool = True,
         timeout: float = 10) -> tuple[int, str]:
    """POST `body`, signed as Slack signs it unless `signed` is False; (status, reply)."""
    data = body.encode() if isinstance(body, str) else body
    sent = {"Content-Type": content_type, "User-Agent": "Slackbot 1.0"}
    if signed:
        sent.update(sign_request(SIGNING_SECRET, data.decode("utf-8", "replace")))
    sent.update(headers or {})
    request = urllib.request.Request(url, data=data, headers=sent, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def form_payload(payload: object) -> str:
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def raw_exchange(host: str, port: int, head: bytes, body_chunks=(), timeout: float = 10
                 ) -> tuple[bytes, int]:
    """Send `head`, then `body_chunks` from a thread that stops at the first send error,
    and read the server's whole answer; (answer, body bytes the client managed to send)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sent = [0]

    def send_body() -> None:
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass

    try:
        sock.sendall(head)
        sender = threading.Thread(target=send_body, daemon=True)
        sender.start()
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        sender.join(timeout)
        return answer, sent[0]
    finally:
        sock.close()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def assert_nothing_happened(slack) -> None:
    """No job, no audit row, no Slack call (beyond the app's `auth.test` at start)."""
    slack.wait_idle()
    assert slack.jobs() == [] and slack.audit() == []
    assert [call.method for call in slack.fake.calls if call.method != "auth.test"] == []


# -- size --------------------------------------------------------------------------------

def test_a_body_declared_over_the_limit_is_refused_from_its_content_length_alone(slack):
    # given a request that announces 1.1 MB and sends none of it
    head = (f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM}\r\n"
            f"Content-Length: {1_100_000}\r\n\r\n").encode()

    # when it reaches the server
    started = time.monotonic()
    answer, _ = raw_exchange(slack.server.host, slack.server.port, head)
    elapsed = time.monotonic() - started

    # then it is refused with 413 at once, without waiting for (or reading) the body
    assert status_of(answer) == 413 and elapsed < 1.0
    assert_nothing_happened(slack)


def test_a_chunked_body_is_refused_with_413_once_it_passes_the_limit(slack):
    # given a chunked body that passes the limit and never ends (no last chunk is sent)
    chunk = b"x" * 65536
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    head = (f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    over_the_limit = MAX_BODY_BYTES // len(chunk) + 2

    # when it is sent
    answer, sent = raw_exchange(slack.server.host, slack.server.port, head,
                                [framed] * over_the_limit)

    # then the server answers 413 without waiting for the rest of a body it never reads whole
    assert status_of(answer) == 413
    assert sent <= over_the_limit * len(framed)
    assert_nothing_happened(slack)


def test_a_signed_slash_command_of_1_1_mb_is_refused_fast(slack):
    # given a correctly signed /run-playbook whose text is 1.1 MB (Slack never sends this)
    body = urllib.parse.urlencode({"command": ids.CMD_RUN_PLAYBOOK, "user_id": OPERATOR,
                                   "team_id": FakeSlack.TEAM_ID, "channel_id": "C_OPS",
                                   "text": "ping local " + "a" * 1_100_000})
    head = (f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in sign_request(SIGNING_SECRET, body).items())
            + f"Content-Length: {len(body)}\r\n\r\n").encode()

    # when it is sent whole
    started = time.monotonic()
    answer, _ = raw_exchange(slack.server.host, slack.server.port, head, [body.encode()])
    elapsed = time.monotonic() - started

    # then it is refused with 413 well within Slack's 3 s, and nothing ran
    assert status_of(answer) == 413 and elapsed < 1.0
    assert_nothing_happened(slack)


def test_a_signed_body_just_under_the_limit_is_parsed_in_linear_time(slack):
    # given a signed click on an action nobody handles, carrying a 900 kB value
    payload = {"type": "block_actions", "team": {"id": FakeSlack.TEAM_ID},
               "user": {"id": OPERATOR, "team_id": FakeSlack.TEAM_ID},
               "actions": [{"action_id": "no_such_action", "block_id": "b",
                            "type": "button", "value": "v" * 900_000}]}
    body = form_payload(payload)
    assert 900_000 < len(body) <= MAX_BODY_BYTES

    # when it is sent
    started = time.monotonic()
    status, reply = post(slack.server.events_url, body)
    elapsed = time.monotonic() - started

    # then it is read, verified and parsed once, fast, and answered with an empty 200
    assert (status, reply) == (200, "") and elapsed < 1.0
    assert_nothing_happened(slack)


# -- malformed bodies --------------------------------------------------------------------

MALFORMED = {
    "payload-not-json": ("payload=%7Bnot+json", FORM),
    "payload-json-array": (urllib.parse.urlencode({"payload": "[1, 2]"}), FORM),
    "payload-json-null": ("payload=null", FORM),
    "payload-json-string": (urllib.parse.urlencode({"payload": '"block_actions"'}), FORM),
    "block-actions-without-actions": (
        form_payload({"type": "block_actions", "user": {"id": OPERATOR}, "actions": []}), FORM),
    "block-actions-with-a-non-object-action": (
        form_payload({"type": "block_actions", "user": {"id": OPERATOR}, "actions": [7]}), FORM),
    "block-actions-user-not-an-object": (
        form_payload({"type": "block_actions", "user": ["U"], "actions": [{}]}), FORM),
    "json-body-array": ("[1, 2]", "application/json"),
    "json-body-not-json": ("{not json", "application/json"),
    "event-callback-without-event": (json.dumps({"type": "event_callback", "event": None}),
                                     "application/json"),
}


@pytest.mark.parametrize("body,content_type", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_signed_but_malformed_body_is_a_400_without_a_traceback(slack, caplog, body,
                                                                   content_type):
    # given a correctly signed request whose body is not what Slack sends
    caplog.set_level(logging.DEBUG)

    # when it is posted
    status, reply = post(slack.server.events_url, body, content_type)

    # then it is a 400 with a fixed reply, nothing ran, and no traceback was logged
    assert status == 400 and json.loads(reply) == {"error": "malformed request"}
    assert_nothing_happened(slack)
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert any("refused a request" in r.getMessage() for r in caplog.records)


def test_a_body_that_is_not_utf8_is_refused(slack):
    status, reply = post(slack.server.events_url, b"command=%2Fjobs&text=\xff\xfe", signed=False,
                         headers=sign_request(SIGNING_SECRET, "x"))

    assert status == 401 and json.loads(reply) == {"error": "invalid request"}
    assert_nothing_happened(slack)


# -- timestamps and signatures -----------------------------------------------------------

@pytest.mark.parametrize("timestamp", ["abc", "", "1e9", "-5", "99999999999999999999",
                                       str(int(time.time()) - 301)],
                         ids=["letters", "empty", "float", "negative", "huge", "stale"])
def test_a_missing_non_numeric_or_stale_timestamp_is_a_401(slack, timestamp):
    # given a /jobs command signed over its body with the timestamp it carries
    body = urllib.parse.urlencode({"command": ids.CMD_JOBS, "user_id": OPERATOR,
                                   "team_id": FakeSlack.TEAM_ID, "text": ""})
    headers = sign_request(SIGNING_SECRET, body)
    headers["X-Slack-Request-Timestamp"] = timestamp

    # when it is posted
    status, reply = post(slack.server.events_url, body, signed=False, headers=headers)

    # then it is refused as unverified (not "Something went wrong" with a 200)
    assert status == 401 and json.loads(reply) == {"error": "invalid request"}
    assert_nothing_happened(slack)


def test_the_body_of_a_forged_request_never_reaches_the_log(slack, caplog):
    # given a forged request whose body tries to write log lines of its own
    caplog.set_level(logging.DEBUG)
    forged = ("command=%2Frun-playbook&text=" + urllib.parse.quote(
        "ping local\n2026-12-01 00:00:00 INFO playbot admin granted to mallory\n") +
        "MALLORY-MARKER" * 1000)

    # when it is posted with a wrong signature
    status, _ = post(slack.server.events_url, forged, signed=False,
                     headers=sign_request("not-the-secret", forged))

    # then it is a 401, and nothing of its body is in any log line
    assert status == 401
    assert_nothing_happened(slack)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "MALLORY" not in logged and "granted to mallory" not in logged
    assert "bad signature" in logged


def test_request_values_in_edge_log_lines_are_escaped_and_truncated(slack, caplog):
    # given a forged request with an enormous user agent
    caplog.set_level(logging.DEBUG)

    status, _ = post(slack.server.events_url, "command=%2Fjobs", signed=False,
                     headers={**sign_request("wrong", "command=%2Fjobs"),
                              "User-Agent": "evil/" + "A" * 5000})

    assert status == 401
    line = next(r.getMessage() for r in caplog.records if "refused a request" in r.getMessage())
    assert "evil/" + "A" * 195 + "…[truncated])" in line and "A" * 196 not in line


def test_loggable_escapes_line_breaks_and_control_characters():
    assert loggable("a\nb\r\x1b[31mc\u2028d") == "a\\nb\\r\\x1b[31mc\\u2028d"
    assert loggable("ünïcode ok") == "ünïcode ok"
    assert loggable("x" * 300) == "x" * 200 + "…[truncated]"


# -- nothing to do -----------------------------------------------------------------------

def test_an_unsubscribed_app_rate_limited_callback_gets_an_empty_200(slack):
    # given Slack's notice that the app is rate limited (sent without any subscription)
    body = json.dumps({"token": "t", "type": "app_rate_limited", "team_id": FakeSlack.TEAM_ID,
                       "minute_rate_limited": 1518467820, "api_app_id": "A_PLAYBOT"})

    # when it arrives
    status, reply = post(slack.server.events_url, body, "application/json")

    # then it gets a 200 (Slack counts other answers against the app) and nothing happens
    assert (status, reply) == (200, "")
    assert_nothing_happened(slack)


def test_an_event_nobody_subscribed_to_gets_an_empty_200(slack):
    result = slack.event({"type": "reaction_added", "user": OPERATOR, "reaction": "tada"})

    assert (result.status, result.response.body) == (200, "")
    assert_nothing_happened(slack)


def test_an_unknown_action_gets_an_empty_200_and_bolt_logs_it_escaped(slack, caplog):
    # given a click on an action id no listener knows, with a line break inside the id
    caplog.set_level(logging.DEBUG)

    # when it arrives
    result = slack.click("no_such_action\nFAKE LOG LINE", "v", user=OPERATOR)

    # then: an empty 200, nothing done, and Bolt's "unhandled" warning is one escaped line
    assert (result.status, result.response.body) == (200, "")
    assert_nothing_happened(slack)
    bolt = [r for r in caplog.records if r.name.startswith("slack_bolt")]
    assert bolt and all("\n" not in r.getMessage() for r in bolt)
    assert any("no_such_action\\nFAKE LOG LINE" in r.getMessage() for r in bolt)


def test_the_escaping_filter_rewrites_a_record_with_arguments():
    record = logging.LogRecord("slack_bolt.App", logging.WARNING, __file__, 1,
                               "Unhandled request (%s)", ("a\nb",), None)

    assert EscapingLogFilter().filter(record) is True
    assert record.getMessage() == "Unhandled request (a\\nb)"


def test_a_valid_command_still_works_through_the_edge(slack):
    result = slack.command(ids.CMD_JOBS, "", user=OPERATOR)

    assert result.status == 200


def test_slacks_ssl_check_probe_gets_an_empty_200_and_nothing_else(slack):
    status, reply = post(slack.server.events_url, "ssl_check=1&token=t", signed=False)

    assert (status, reply) == (200, "")
    assert_nothing_happened(slack)


def test_a_command_that_mentions_ssl_check_is_still_verified(slack):
    body = urllib.parse.urlencode({"command": ids.CMD_JOBS, "text": "ssl_check=1",
                                   "ssl_check": "1", "user_id": OPERATOR})

    status, _ = post(slack.server.events_url, body, signed=False)

    assert status == 401
