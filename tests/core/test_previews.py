"""A preview's summary is read from its stored output: the tasks that would change per host
(each `changed: [host]` under its task header) and a capped diff excerpt."""

from __future__ import annotations

from core.previews import DIFF_EXCERPT_LINES, DIFF_LINE_CHARS, PreviewSummary, summarize_lines

OUTPUT = """\
PLAY [all] *********************************************************************

TASK [Deploy config] ***********************************************************
--- before: /etc/app.conf
+++ after: /etc/app.conf
@@ -1 +1 @@
-listen 80
+listen 8080

changed: [web-01]
ok: [web-02]

TASK [Say hello] ***************************************************************
ok: [web-01] => {
    "msg": "--- before: not a diff"
}

RUNNING HANDLER [Restart app] **************************************************
changed: [web-01]
""".splitlines()


def test_each_host_lists_the_tasks_that_would_change_it_and_the_diff_is_excerpted():
    changed, diff, total = summarize_lines(OUTPUT)

    assert changed == {"web-01": ["Deploy config", "Restart app"]}
    assert diff == ["--- before: /etc/app.conf", "+++ after: /etc/app.conf", "@@ -1 +1 @@",
                    "-listen 80", "+listen 8080"]
    assert total == 5


def test_a_long_diff_is_cut_to_the_excerpt_and_long_lines_are_shortened():
    lines = ["TASK [Big] ***", "--- before", *(f"+{'x' * 500}" for _ in range(100)),
             "changed: [web-01]"]

    changed, diff, total = summarize_lines(lines)

    assert changed == {"web-01": ["Big"]}
    assert len(diff) == DIFF_EXCERPT_LINES and total == 101
    assert all(len(line) <= DIFF_LINE_CHARS for line in diff)


def test_the_card_keeps_the_head_of_a_long_diff_escaped_and_within_slacks_limits():
    from db.models import JobStatus
    from slackui.limits import MAX_SECTION_TEXT
    from slackui.tickets import preview_blocks

    class Linked:  # an approval ticket, as far as the card reads it
        preview_job_id = 7

    lines = ["TASK [Big] ***", "--- before: /etc/big <x>", *(f"+{'x' * 500}" for _ in range(60)),
             "changed: [web-01]"]
    changed, diff, total = summarize_lines(lines)
    summary = PreviewSummary(job_id="j", status=JobStatus.success, host="web-01",
                             changed=changed, diff=diff, diff_lines=total)

    blocks = preview_blocks([Linked()], {7: summary})

    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert "would change: 1 task on *web-01* — Big" in texts[0]
    assert texts[1].startswith("```\n--- before: /etc/big &lt;x&gt;")
    assert all(len(t) <= MAX_SECTION_TEXT for t in texts)
    assert "the first lines of 61" in str(blocks[-1])
