"""Entry point of the benchmark's own server processes (`python -m bench.serve KIND`).

The product's processes are started as an install starts them (`playbot web`,
`playbot worker`, see bench/stack.py); these are the others:

- `bare`: the floor: a Bolt app whose listeners only ack (`bench.bare_app`), with the same
  signing secret and ack mode, behind Bolt's own WSGI adapter under waitress with the same
  thread count.
- `slack`: a FakeSlack Web API on `--port`, in a process of its own so that serving the
  app's Slack calls does not steal the load generator's CPU; with `--call-log FILE` it
  appends one JSON line per channel message posted (wall time, text, blocks) for figures
  that time when a reply reached Slack.
- `after-ack`: `playbot worker`'s after-ack consumer alone (`bot.after_ack_worker`, settings
  from the environment), for the ack figure, whose jobs must stay pending (a whole
  `playbot worker` would run them).

Each prints one JSON line on stdout once it listens, then serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading


def _ready(**info: object) -> None:
    print(json.dumps({"ready": True, "pid": os.getpid(), **info}), flush=True)


def serve_bare(port: int, threads: int, process_before_response: bool) -> None:
    import waitress
    from slack_bolt.adapter.wsgi import SlackRequestHandler
    from slack_sdk import WebClient

    from bench.bare_app import create_bare_app

    client = WebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"])
    app = create_bare_app(signing_secret=os.environ["SLACK_SIGNING_SECRET"], client=client,
                          process_before_response=process_before_response)
    # waitress's default loop timeout: it reads asyncore_loop_timeout as an int, so the 0.2
    # once set here became 0, a poll loop spinning a core for the whole ack figure.
    server = waitress.create_server(SlackRequestHandler(app, path="/slack/events"),
                                    host="127.0.0.1", port=port, threads=threads,
                                    ident="bare")
    _ready(kind="bare", process_before_response=process_before_response, threads=threads)
    server.run()


def serve_slack(port: int, call_log: str | None = None) -> None:
    import time

    from bot.fake_slack import FakeSlack

    fake = FakeSlack(port=port)
    if call_log:
        log = open(call_log, "a", buffering=1)  # noqa: SIM115, PTH123 - lives as long as we do
        lock = threading.Lock()

        def record(call) -> None:  # noqa: ANN001
            if call.method == "chat.postMessage" and not call.params.get("thread_ts"):
                line = json.dumps({"t": time.time(), "text": call.params.get("text") or "",
                                   "blocks": str(call.params.get("blocks") or "")})
                with lock:
                    log.write(line + "\n")

        fake.subscribe(record)
    fake.start()
    _ready(kind="slack", api_url=fake.api_url)
    threading.Event().wait()


def serve_after_ack(threads: int) -> None:
    import logging

    from bot.after_ack_worker import start_after_ack_worker
    from bot.settings import Settings

    settings = Settings()
    logging.basicConfig(level=settings.log_level)
    start_after_ack_worker(settings, threads=threads)
    _ready(kind="after-ack", threads=threads)
    threading.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("kind", choices=["bare", "slack", "after-ack"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--call-log", default=None)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--process-before-response", action="store_true")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.kind == "bare":
        serve_bare(args.port, args.threads, args.process_before_response)
    elif args.kind == "after-ack":
        serve_after_ack(args.threads)
    else:
        serve_slack(args.port, args.call_log)


if __name__ == "__main__":
    main()
