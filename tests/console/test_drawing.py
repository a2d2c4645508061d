"""How the console draws what the app sends to Slack: real Web API calls (a WebClient talking
to FakeSlack over HTTP), drawn by the console's Conversation on a Screen writing to a buffer.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from bot.console.conversation import Conversation, Origin
from bot.console.markup import PLAIN, Style, to_terminal
from bot.console.render import BlockRenderer
from bot.console.screen import Screen
from bot.fake_slack import FakeSlack

CHANNEL = "C_OPS"


def job_blocks(status: str, buttons: list[tuple[str, str]], *, extra: str | None = None
               ) -> list[dict]:
    blocks: list[dict] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{status} · *ping* on *local*"}},
        {"type": "context", "elements": [{"type": "mrkdwn",
                                          "text": "Job `1a2b3c4d` · by <@U_ALICE>"}]},
    ]
    if extra:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": extra}})
    if buttons:
        blocks.append({"type": "actions", "block_id": "job:1a2b", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": label},
             "action_id": action, "value": "1a2b"} for label, action in buttons]})
    return blocks


class Drawn:
    """A Conversation over a real FakeSlack, and the app's side: a WebClient."""

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self.out = io.StringIO()
        self.screen = Screen(self.out, style=PLAIN)
        self.me = "U_ALICE"
        self.conversation = Conversation(
            fake, self.screen, user_name=lambda uid: uid.removeprefix("U_").lower(),
            current_user=lambda: self.me, channel_name=lambda c: "#ops",
            default_channel=CHANNEL)
        self.client = WebClient(token="xoxb-test", base_url=fake.api_url)

    @property
    def text(self) -> str:
        return self.out.getvalue()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def drawn(fake: FakeSlack) -> Drawn:
    fake.reset()
    return Drawn(fake)


def test_mrkdwn_is_shown_as_a_person_reads_it() -> None:
    text = ("*Job* `1a2b` by <@U_BOB> in <#C_OPS|ops> at <!date^1700000000^{date}|2023-11-14> "
            ":white_check_mark: <https://example.com|docs> &lt;b&gt; &amp;")

    shown = to_terminal(text, PLAIN, lambda uid: "bob")

    assert shown == "Job 1a2b by @bob in #ops at 2023-11-14 ✅ docs <b> &"


def test_bold_text_uses_ansi_only_when_colour_is_on() -> None:
    assert to_terminal("*bold*", Style(color=True)) == "\x1b[1mbold\x1b[22m"
    assert to_terminal("*bold*", PLAIN) == "bold"


def test_buttons_are_numbered_choices() -> None:
    rendered = BlockRenderer().render("", job_blocks("running", [("Cancel", "job_cancel"),
                                                                 ("Retry", "job_retry")]))

    assert rendered.lines[-1] == "[1 Cancel] [2 Retry]"
    assert [(c.number, c.action_id, c.element["value"]) for c in rendered.choices] == [
        (1, "job_cancel", "1a2b"), (2, "job_retry", "1a2b")]


def test_a_code_block_keeps_its_lines_verbatim() -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn",
                                           "text": "```\nTASK [x] *****\nok: [local] => {}\n```"}}]

    rendered = BlockRenderer().render("", blocks)

    assert rendered.lines == ["  TASK [x] *****", "  ok: [local] => {}"]
    assert rendered.kinds == ["code", "code"]


def test_a_channel_message_is_drawn_with_its_channel_and_buttons(drawn: Drawn) -> None:
    drawn.client.chat_postMessage(channel=CHANNEL, text="ping on local: pending",
                                  blocks=job_blocks("pending", [("Cancel", "job_cancel")]))

    assert "#ops Playbot:" in drawn.text
    assert "pending · ping on local" in drawn.text
    assert "Job 1a2b3c4d · by @alice" in drawn.text
    assert "[1 Cancel]" in drawn.text


def test_progress_updates_are_one_line_and_keep_button_numbers(drawn: Drawn) -> None:
    posted = drawn.client.chat_postMessage(channel=CHANNEL, text="ping on local: running",
                                           blocks=job_blocks("running", [("Cancel", "job_cancel")],
                                                             extra="Tasks done: 1"))

    drawn.client.chat_update(channel=CHANNEL, ts=posted["ts"], text="ping on local: running",
                             blocks=job_blocks("running", [("Cancel", "job_cancel")],
                                               extra="Tasks done: 3"))

    last = drawn.text.strip().splitlines()[-1]
    assert last == "  ↻ ping on local: running — Tasks done: 3"
    assert drawn.conversation.target(1).choice.label == "Cancel"
    assert not drawn.conversation.target(1).gone


def test_a_final_update_is_drawn_in_full_and_old_buttons_are_gone(drawn: Drawn) -> None:
    posted = drawn.client.chat_postMessage(channel=CHANNEL, text="ping on local: running",
                                           blocks=job_blocks("running", [("Cancel", "job_cancel")]))

    drawn.client.chat_update(channel=CHANNEL, ts=posted["ts"], text="ping on local: failed",
                             blocks=job_blocks("failed", [("Retry", "job_retry")],
                                               extra="*Recap*\n`local` ok 1 · failed 1"))

    tail = drawn.text.split("↻ updated:")[1]
    assert "failed · ping on local" in tail
    assert "Recap" in tail and "local ok 1 · failed 1" in tail
    assert "[2 Retry]" in tail
    assert drawn.conversation.target(1).gone


def test_thread_replies_are_indented_under_a_heading_naming_their_parent(drawn: Drawn) -> None:
    posted = drawn.client.chat_postMessage(channel=CHANNEL, text="ping on local: running",
                                           blocks=job_blocks("running", []))

    drawn.client.chat_postMessage(channel=CHANNEL, thread_ts=posted["ts"], text="output",
                                  blocks=[{"type": "section", "text": {
                                      "type": "mrkdwn", "text": "```\nTASK [Greet]\n```"}}])
    drawn.client.chat_postMessage(channel=CHANNEL, thread_ts=posted["ts"], text="more output")

    lines = drawn.text.splitlines()
    heading = lines.index("  ↳ thread of: running · ping on local")
    assert lines[heading + 1:heading + 3] == ["    │   TASK [Greet]", "    │ more output"]


def test_ephemeral_replies_say_who_sees_them(drawn: Drawn) -> None:
    drawn.client.chat_postEphemeral(channel=CHANNEL, user="U_ALICE", text=":mag: No job `zz`.")
    drawn.client.chat_postEphemeral(channel=CHANNEL, user="U_BOB", text="Only for bob")

    assert "#ops (only you): 🔍 No job zz." in drawn.text
    assert "#ops (only bob): Only for bob" in drawn.text
    assert [m.text for m in drawn.conversation.replies_since(0, "U_ALICE")] == [
        ":mag: No job `zz`."]


def test_replace_original_through_a_response_url_redraws_the_clicked_message(
        drawn: Drawn) -> None:
    posted = drawn.client.chat_postMessage(channel=CHANNEL, text="Approve?", blocks=job_blocks(
        "waiting", [("Approve", "approval_approve")]))
    url = drawn.fake.response_url("U_ALICE")
    drawn.conversation.remember_origin(url, Origin("U_ALICE", CHANNEL, (CHANNEL, posted["ts"])))

    WebhookClient(url).send(text="Approved", replace_original=True,
                            blocks=job_blocks("approved", []))

    assert "approved · ping on local" in drawn.text.split("↻ updated:")[1]
    assert drawn.conversation.target(1).gone


def test_an_opened_modal_waits_to_be_filled_in(drawn: Drawn) -> None:
    drawn.conversation.remember_trigger("t-1", "U_BOB")

    drawn.client.views_open(trigger_id="t-1", view={
        "type": "modal", "callback_id": "resolve", "title": {"type": "plain_text", "text": "Fix"},
        "blocks": []})

    modal = drawn.conversation.next_modal()
    assert modal is not None and modal.user == "U_BOB" and modal.title == "Fix"
    assert modal.id.startswith("V")
    assert "a form opened: Fix" in drawn.text


def test_a_button_on_another_persons_ephemeral_message_cannot_be_pressed(
        drawn: Drawn, sqlite_url: str) -> None:
    from bot.console.people import Directory
    from bot.console.session import Backend, ConsoleSession
    from bot.console.slack_requests import Person
    from db.session import make_engine, make_session_factory

    # given an ephemeral reply with a button, shown to alice only
    drawn.client.chat_postEphemeral(channel=CHANNEL, user="U_ALICE", text="Job",
                                    blocks=job_blocks("failed", [("Retry", "job_retry")]))
    engine = make_engine(sqlite_url)
    factory = make_session_factory(engine)
    backend = Backend(requests=None, conversation=drawn.conversation,  # type: ignore[arg-type]
                      session_factory=factory, wait_app_idle=lambda _t: True,
                      drain_workers=lambda _t: True)
    carol = ConsoleSession(backend, drawn.screen, Directory(factory), Person("carol", "U_CAROL"),
                           scripted=True)

    # when carol tries to press it
    result = carol.handle("click Retry", lambda _prompt: "")

    # then the console refuses, as Slack would never show her that message
    assert not result.ok
    assert "is on a message only U_ALICE can see" in result.reason
    engine.dispose()
