"""Block Kit builders stay inside Slack's limits and never let typed text act as markup."""

from __future__ import annotations

from db.models import Playbook
from slackui import ids
from slackui.blocks import code_block, escape, section
from slackui.limits import (
    MAX_MESSAGE_BLOCKS,
    MAX_SECTION_TEXT,
    MAX_VIEW_BLOCKS,
    cap_blocks,
    truncate,
    truncate_lines,
)
from slackui.modals import read_run_form, run_playbook_modal, var_block_id


def test_too_many_blocks_are_cut_with_a_note_of_how_many():
    blocks = [section(f"item {n}") for n in range(80)]

    capped = cap_blocks(blocks)

    assert len(capped) == MAX_MESSAGE_BLOCKS
    assert "and 31 more" in capped[-1]["elements"][0]["text"]


def test_long_section_text_is_cut_to_slacks_limit():
    [block] = cap_blocks([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 5000}}])

    assert len(block["text"]["text"]) == MAX_SECTION_TEXT
    assert block["text"]["text"].endswith("…")


def test_a_log_tail_keeps_the_last_lines_and_says_how_many_were_dropped():
    lines = [f"line {n}" for n in range(1, 2001)]

    text = truncate_lines(lines, 500)

    assert len(text) <= 500
    assert text.endswith("line 2000")
    assert text.startswith("…") and "earlier lines" in text


def test_code_blocks_fit_and_cannot_be_broken_out_of():
    block = code_block(["```", "<!channel> " + "y" * 4000])

    text = block["text"]["text"]
    assert len(text) <= MAX_SECTION_TEXT
    assert text.startswith("```\n") and text.endswith("\n```")
    assert text.count("```") == 2
    assert "<!channel>" not in text


def test_escape_neutralises_mentions_and_links():
    assert escape("<!here> & <@U1>") == "&lt;!here&gt; &amp; &lt;@U1&gt;"
    assert truncate("abc", 10) == "abc"


def test_a_playbook_with_many_variables_still_makes_a_valid_modal():
    variables = {f"var_{n}": {"type": "string"} for n in range(150)}
    book = Playbook(name="huge", file_path="huge.yml", file_hash="0" * 64, variables=variables)

    view = run_playbook_modal([book], selected=book)

    assert len(view["blocks"]) <= MAX_VIEW_BLOCKS
    assert "do not fit" in str(view["blocks"])


def test_reading_a_submitted_form_gives_the_typed_text():
    state = {
        ids.BLOCK_RUN_PLAYBOOK: {ids.ACTION_MODAL_PLAYBOOK_SELECT: {
            "type": "static_select", "selected_option": {"value": "deploy"}}},
        ids.BLOCK_RUN_TARGET: {ids.ACTION_INPUT_VALUE: {"type": "plain_text_input",
                                                        "value": " tag:web "}},
        var_block_id("dry_run"): {ids.ACTION_INPUT_VALUE: {"type": "checkboxes",
                                                           "selected_options": []}},
        var_block_id("note"): {ids.ACTION_INPUT_VALUE: {"type": "plain_text_input",
                                                        "value": None}},
        ids.BLOCK_RUN_CHECK: {ids.ACTION_INPUT_VALUE: {"type": "checkboxes",
                                                       "selected_options": [{"value": "check"}]}},
    }

    form = read_run_form(state)

    assert form.playbook == "deploy" and form.target == "tag:web"
    assert form.raw_vars == {"dry_run": "false"}  # an empty optional field is left out
    assert form.check_mode is True
