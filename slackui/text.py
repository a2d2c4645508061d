"""The one rule for text Playbot did not write itself, wherever it goes in Slack.

Slack reads markup in a message's `text`, in `mrkdwn` text objects (sections, fields,
context) and in confirm dialogs' text: `<@U…>` mentions a user, `<!channel>`/`<!here>` pings
a channel, `<#C…>` names a channel, `<https://…|label>` is a link, `<!date^…>` a date token.
Every one of them needs a `<`. So:

- **mrkdwn and `text`:** every string a user typed, a playbook or Ansible printed (task names,
  a failed task's message echoing a variable), or the database holds (playbook and host
  names, notes, reasons) goes through `escape()` — `&` → `&amp;`, `<` → `&lt;`, `>` → `&gt;`,
  in that order, which is Slack's own escaping — before it is put into mrkdwn. The result can
  never produce a mention, ping, channel link, URL link or date token: it holds no `<`.
  What Slack shows is the original text (`&lt;job id&gt;` renders as `<job id>`), so usage
  hints and placeholders render.
- **plain_text** objects (headers, buttons, options, modal titles and inputs' labels and
  placeholders) and modal **field errors** are never parsed for markup by Slack, so text is
  put there as it is (escaping would show the entities).
- **Formatting characters** (`*`, `_`, `~`, backticks) are left alone: at worst they change
  how user text is emphasised, never what it does. Inside a code span (`code()`) a backtick
  would end the span early, so it is replaced by a look-alike (`ˋ`).
- **File names** given to `files.upload*` are plain: they are shown, never parsed.

Slash-command text arrives with Slack's escaping applied (`&amp;`, `&lt;`, `&gt;`);
`handlers.parsing.slack_unescape` undoes it before parsing, and this module escapes again on
the way out, so a value round-trips exactly.
"""

from __future__ import annotations

BACKTICK_LOOKALIKE = "\u02cb"  # ˋ modifier letter grave accent


def escape(text: object) -> str:
    """`text` as Slack mrkdwn that shows it literally: &, <, > escaped (Slack's own rule)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: object) -> str:
    """`text` escaped and wrapped as an inline code span that it cannot end early."""
    return f"`{escape(text).replace('`', BACKTICK_LOOKALIKE) or ' '}`"
