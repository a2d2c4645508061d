"""`playbot console`: the whole product in a terminal, with no Slack workspace.

What the user types becomes a real, signed Slack request to the real Bolt app (over loopback
HTTP to the real WSGI app); the app's Web API calls go to an in-process `FakeSlack` whose
calls are drawn in the terminal. Modules:

- `bootstrap`: the embedded Playbot (SQLite, in-process workers, fake Slack, web server);
- `conversation`: follows the fake Slack and draws messages, updates, threads, modals;
- `render` / `markup`: Block Kit and mrkdwn as terminal text;
- `slack_requests`: slash commands, block_actions and view_submission as Slack sends them;
- `forms`: modals as terminal forms;
- `session`: what each typed line does; `repl` and `script`: interactive and script mode;
- `screen`: terminal output that never garbles the prompt; `people`: who you can be;
- `main`: `run_console()`, what `playbot console` calls.
"""
