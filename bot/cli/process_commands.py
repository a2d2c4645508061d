"""The long-running processes and the console: `playbot web`, `socket`, `worker`, `clock`,
`console`, and `playbot maintenance` for the clock's jobs on demand.

- `web`: the HTTP app (`POST /slack/events`, `GET /healthz`, `GET /metrics`) on PORT, served
  by waitress (`bot.web.serve`).
- `socket`: the same app over Slack's Socket Mode (`bot.socket_mode.run_socket_mode`).
- `worker`: Dramatiq workers consuming jobs from Redis (`workers.main.run_worker`), and on
  threads of their own the Slack app's work after each ack (`bot.after_ack_worker`).
- `clock`: the housekeeping loop — reaper, requeue, approval expiry, log retention
  (`workers.main.run_clock`).
- `console`: the whole product in a terminal (`bot.console`).

Without REDIS_URL (the embedded default) there is no queue between processes: `web` and
`socket` then run the workers and the housekeeping inside their own process, and `worker`
and `clock` refuse to start, saying so.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.context import fail, settings

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from bot.settings import Settings

log = logging.getLogger(__name__)

maintenance = typer.Typer(no_args_is_help=True,
                          help="Run the clock's housekeeping jobs once, now.")

NO_REDIS_WORKER = (
    "REDIS_URL is not set, so there is no queue for a separate worker to read: jobs run "
    "inside `playbot web` (or `playbot socket`) in the embedded default. Set REDIS_URL "
    "(e.g. redis://localhost:6379/0) on the web and worker processes to run workers apart.")
NO_REDIS_CLOCK = (
    "REDIS_URL is not set: `playbot web` (or `playbot socket`) already runs the housekeeping "
    "in its own process. Set REDIS_URL to run a separate clock process.")


def register(app: typer.Typer) -> None:
    """Attach the process commands and the maintenance group to the root app."""
    app.command("web")(web)
    app.command("socket")(socket)
    app.command("worker")(worker)
    app.command("clock")(clock)
    app.command("console")(console)
    app.add_typer(maintenance, name="maintenance")


# the app processes ----------------------------------------------------------------------


def _worker_config(loaded: Settings) -> Any:
    from workers.config import WorkerConfig

    return WorkerConfig.from_settings(loaded)


def _runtime(loaded: Settings) -> tuple[Runtime, Any]:
    """The app's runtime; with no REDIS_URL also the embedded workers it enqueues to."""
    from slack_sdk.errors import SlackApiError, SlackClientError

    from bot.after_ack import AfterAckMode
    from bot.runtime import build_runtime, freeze_startup_heap

    missing = [name for name, value in (("SLACK_BOT_TOKEN", loaded.slack_bot_token),
                                        ("SLACK_SIGNING_SECRET", loaded.slack_signing_secret))
               if not value]
    if missing:
        fail(f"{' and '.join(missing)} must be set to serve Slack (from the app's settings page: "
             "OAuth & Permissions → Bot User OAuth Token; Basic Information → Signing Secret). "
             "To try Playbot without Slack: `playbot console`.")
    embedded = None
    queue = None
    if not loaded.uses_redis:
        from workers.embedded import start_embedded

        embedded = start_embedded(_worker_config(loaded))
        queue = embedded.queue
        log.info("REDIS_URL is not set: jobs run in this process (in-process broker)")
    runtime = None
    try:
        if loaded.uses_redis:
            runtime = build_runtime(loaded, after_ack=AfterAckMode.BROKER)
            log.info("the work after each ack goes to Redis, for `playbot worker`")
        else:
            runtime = build_runtime(loaded, queue=queue)
        freeze_startup_heap()
        return runtime, embedded
    except ValueError as exc:  # missing token or signing secret
        _stop(embedded, runtime)
        fail(str(exc))
    except (SlackApiError, SlackClientError, OSError) as exc:
        _stop(embedded, runtime)
        fail(f"Slack refused the bot token or could not be reached ({exc}). Check "
             "SLACK_BOT_TOKEN (xoxb-…) and SLACK_API_URL.")


def _stop(embedded: Any, runtime: Runtime | None = None) -> None:
    if runtime is not None:
        runtime.close()
    if embedded is not None:
        embedded.stop()


def _exit_on_sigterm() -> None:
    """Make SIGTERM (what process managers send) unwind like Ctrl-C: the server stops, the
    app's background work drains, embedded workers stop their playbooks cleanly."""

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)


def web(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "0.0.0.0",  # noqa: S104
    port: Annotated[int | None, typer.Option(help="Port (default: PORT, 3000).")] = None,
    threads: Annotated[int, typer.Option(min=1, help="Request threads.")] = 8,
) -> None:
    """Serve the Slack app over HTTP: POST /slack/events, GET /healthz, GET /metrics."""
    from bot.web import serve

    loaded = settings()
    runtime, embedded = _runtime(loaded)
    _exit_on_sigterm()
    try:
        serve(runtime, host=host, port=port if port is not None else loaded.port,
              threads=threads)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port or loaded.port}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        pass
    finally:
        _stop(embedded)


def socket() -> None:
    """Connect to Slack over Socket Mode (needs SLACK_APP_TOKEN, xapp-…)."""
    from bot.socket_mode import SocketModeConfigError, run_socket_mode

    loaded = settings()
    if not loaded.slack_app_token:
        fail("SLACK_APP_TOKEN is not set. Socket Mode needs an app-level token (xapp-…) with "
             "the connections:write scope; or run `playbot web` (HTTP mode).")
    runtime, embedded = _runtime(loaded)
    _exit_on_sigterm()
    try:
        run_socket_mode(runtime)
    except SocketModeConfigError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass
    finally:
        _stop(embedded)


def worker(
    threads: Annotated[int, typer.Option(min=1, max=64,
                                         help="Playbooks run at the same time.")] = 2,
    with_clock: Annotated[bool, typer.Option(
        "--with-clock", help="Also do the clock's housekeeping in this process.")] = False,
    after_ack_threads: Annotated[int | None, typer.Option(
        min=0, max=64, help="Threads doing the Slack app's work after each ack (default: "
                            "PLAYBOT_AFTER_ACK_THREADS, 4; 0: leave it to other workers).")
                                 ] = None,
) -> None:
    """Run playbooks from the Redis queue until SIGTERM (finishes running ones first), and
    the Slack app's work after each ack on threads of its own."""
    from slack_sdk.errors import SlackApiError, SlackClientError

    from workers.main import run_worker

    loaded = settings()
    if not loaded.uses_redis:
        fail(NO_REDIS_WORKER)
    consumer = None
    after_ack = loaded.playbot_after_ack_threads if after_ack_threads is None else after_ack_threads
    if after_ack:
        from bot.after_ack_worker import start_after_ack_worker

        try:
            consumer = start_after_ack_worker(loaded, threads=after_ack)
        except ValueError as exc:
            fail(f"{exc}. The worker also does the Slack app's work after each ack "
                 "(`playbot web` only acks); give it the web process's Slack settings, or "
                 "--after-ack-threads 0 if other workers do that work.")
        except (SlackApiError, SlackClientError, OSError) as exc:
            fail(f"Slack refused the bot token or could not be reached ({exc}). Check "
                 "SLACK_BOT_TOKEN (xoxb-…) and SLACK_API_URL.")
    try:
        code = run_worker(_worker_config(loaded), threads=threads, housekeeping_too=with_clock)
    finally:
        if consumer is not None:
            consumer.stop()
    raise typer.Exit(code)


def clock() -> None:
    """Housekeeping loop: reap stale jobs, requeue lost ones, expire approvals, archive logs."""
    from workers.main import run_clock

    loaded = settings()
    if not loaded.uses_redis:
        fail(NO_REDIS_CLOCK)
    raise typer.Exit(run_clock(_worker_config(loaded)))


def console(
    as_user: Annotated[str, typer.Option(
        "--as", help="Who you are: alice (admin), bob (operator), carol (viewer), or any "
                     "new name.")] = "alice",
    script: Annotated[str | None, typer.Option(
        "--script", help="Run the lines of FILE (- for stdin) instead of a prompt; exit 1 "
                         "if a step fails.", metavar="FILE")] = None,
    inventory: Annotated[Path | None, typer.Option(
        help="Inventory imported on first start (default: inventory.yml beside "
             "PLAYBOOK_DIR).")] = None,
) -> None:
    """Playbot in your terminal: the real app and workers, Slack simulated, nothing to set up."""
    from bot.console.main import run_console

    raise typer.Exit(run_console(as_user=as_user, script=script, inventory=inventory))


# maintenance ----------------------------------------------------------------------------


@maintenance.command("archive-logs")
def archive_logs() -> None:
    """Archive job logs older than PLAYBOT_LOG_RETENTION_DAYS and the jobs that old.

    The lines go to compressed files and out of the database; finished jobs that old are
    archived (their outcome is kept)."""
    from workers import housekeeping

    loaded = settings()
    result = housekeeping.archive_logs(_worker_config(loaded))
    typer.echo(f"Archived {result.lines_archived} log lines into {len(result.files)} files "
               f"under {loaded.playbot_archive_dir}; {result.jobs_archived} jobs archived.")
    for path in result.files:
        typer.echo(f"  {path}")


@maintenance.command("reap")
def reap() -> None:
    """End running jobs whose worker stopped heartbeating (as failed, with a ticket)."""
    from workers import housekeeping

    reaped = housekeeping.reap(_worker_config(settings()))
    typer.echo(f"Reaped {len(reaped)} jobs." if reaped else "No stale jobs.")
    for job_id in reaped:
        typer.echo(f"  {job_id}")


@maintenance.command("expire-approvals")
def expire_approvals() -> None:
    """Expire approval requests past their deadline (their jobs are cancelled)."""
    from workers import housekeeping

    count = housekeeping.expire_approvals(_worker_config(settings()))
    typer.echo(f"Expired {count} approval requests." if count else "No overdue approvals.")


@maintenance.command("requeue")
def requeue() -> None:
    """Send pending jobs again whose queue message was never sent or was lost (needs Redis)."""
    from workers import actors, housekeeping
    from workers.broker import setup_broker

    loaded = settings()
    if not loaded.uses_redis:
        fail("REDIS_URL is not set: without Redis, pending jobs are requeued by the process "
             "that runs them (`playbot web`).")
    config = _worker_config(loaded)
    from workers.config import configure

    configure(config)
    run_job = actors.declare(setup_broker(loaded.redis_url))["run_job"]
    sent = housekeeping.requeue(config, send=lambda job_id: run_job.send(job_id).message_id)
    typer.echo(f"Requeued {len(sent)} jobs." if sent else "Nothing to requeue.")
    for job_id in sent:
        typer.echo(f"  {job_id}")
