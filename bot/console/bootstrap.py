"""The embedded Playbot behind `playbot console`: the real app, in one process, no servers.

`start_playbot(...)` brings up, in order:
1. `FakeSlack` on loopback — the Web API the app and the workers talk to;
2. the settings, from the environment but with what the console decides itself: no Redis
   (in-process broker), a dummy bot token, a random signing secret made here and never
   shown, and the fake's URL as SLACK_API_URL;
3. the database at DATABASE_URL (default: a SQLite file), migrated to head;
4. on first start, the examples: the demo users (alice admin, bob operator, carol viewer,
   Slack ids U_ALICE…), the servers of `examples/inventory.yml`, and the playbooks of
   PLAYBOOK_DIR; later starts only add what is missing. When PLAYBOOK_DIR is unset and the
   current directory has no `examples/playbooks`, the checkout's own examples are used (an
   editable install, as `scripts/console` makes, works from any directory); when there are
   none, the console stops before it writes anything (`check_examples`);
5. the workers in this process (`workers.embedded.start_embedded`): Dramatiq's in-process
   broker, worker threads and housekeeping;
6. the real Bolt app and WSGI app (`bot.runtime`, `bot.web`) served by waitress on a free
   loopback port, and a `SlackSender` that signs requests to it as Slack does.

`Playbot.close()` stops all of it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bot.console.people import slack_id_for
from bot.fake_slack import FakeSlack, SlackSender
from bot.runtime import Runtime, build_runtime
from bot.settings import Settings, load_settings
from bot.web import WebServer, make_server
from db.models import Playbook, Server, User
from db.session import make_engine, make_session_factory, transaction
from migrations import alembic_config

log = logging.getLogger(__name__)

CONSOLE_CHANNEL = "C_OPS"
CONSOLE_CHANNEL_NAME = "#ops"
CONSOLE_BOT_TOKEN = "xoxb-playbot-console"  # the Web API is the fake: no real token needed
DEMO_USERS = (("alice", "admin"), ("bob", "operator"), ("carol", "viewer"))
CONSOLE_ORIGIN = {"via": "console"}
WORKER_THREADS = 2
SHUTDOWN_GRACE = 5.0  # on quit, running playbooks get this long before they are stopped
DEFAULT_PLAYBOOK_DIR = Path("examples/playbooks")
SHIPPED_PLAYBOOK_DIR = Path(__file__).resolve().parents[2] / "examples" / "playbooks"


class ConsoleSetupError(Exception):
    """The console cannot start here (message says what to fix)."""


@dataclass
class Playbot:
    """A running embedded Playbot: fake Slack, database, workers, app and web server."""

    settings: Settings
    fake: FakeSlack
    runtime: Runtime
    web: WebServer
    workers: Any
    sender: SlackSender
    notes: list[str] = field(default_factory=list)
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def session_factory(self) -> sessionmaker[Session]:
        return self.runtime.session_factory

    def wait_app_idle(self, timeout: float) -> bool:
        """Wait until the app has finished the background half of every request."""
        return self.runtime.wait_idle(timeout=timeout)

    def drain_workers(self, timeout: float) -> bool:
        """Wait until the workers' Slack notifiers have posted everything they hold."""
        from workers import notifier

        return notifier.drain(timeout)

    def close(self) -> None:
        """Stop the web server, the workers, the app's thread pool and the fake Slack."""
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:  # noqa: BLE001 - shutting down: stop the rest regardless
                log.exception("while stopping the console")
        self._closers.clear()


def examples_dir(settings: Settings) -> Path:
    """PLAYBOOK_DIR, or the checkout's examples when it is the default and not here."""
    chosen = Path(settings.playbook_dir)
    if chosen == DEFAULT_PLAYBOOK_DIR and not chosen.is_dir() and SHIPPED_PLAYBOOK_DIR.is_dir():
        return SHIPPED_PLAYBOOK_DIR
    return chosen


def check_examples(settings: Settings, inventory: Path | None) -> None:
    """Raise ConsoleSetupError, before anything is written, when the playbooks or the
    inventory the console would seed are missing."""
    playbook_dir = examples_dir(settings)
    if not playbook_dir.is_dir():
        raise ConsoleSetupError(
            f"PLAYBOOK_DIR {playbook_dir} is not a directory: set PLAYBOOK_DIR to your "
            "playbooks, or run the console from a Playbot checkout (it uses examples/playbooks)")
    chosen = inventory if inventory is not None else playbook_dir.parent / "inventory.yml"
    if inventory is not None and not chosen.is_file():
        raise ConsoleSetupError(f"the inventory {chosen} is not a file")


def console_settings(api_url: str, **overrides: Any) -> Settings:
    """The settings of the embedded Playbot: the environment's, with the console's own Slack
    side and the in-process broker. Raises bot.settings.SettingsError."""
    values: dict[str, Any] = {
        "redis_url": None,
        "slack_bot_token": CONSOLE_BOT_TOKEN,
        "slack_signing_secret": secrets.token_urlsafe(32),
        "slack_app_token": None,
        "slack_api_url": api_url,
        "playbot_jobs_channel": None,
    }
    values.update(overrides)
    settings = load_settings(**values)
    if "playbook_dir" not in overrides and examples_dir(settings) != settings.playbook_dir:
        settings = load_settings(**{**values, "playbook_dir": examples_dir(settings)})
    return settings


def migrate(database_url: str) -> None:
    """Create the SQLite file's directory if needed and upgrade the schema to head."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), "head")


def default_inventory(settings: Settings) -> Path:
    """`examples/inventory.yml` beside the playbook directory `examples/playbooks`."""
    return Path(settings.playbook_dir).parent / "inventory.yml"


def seed_examples(session_factory: sessionmaker[Session], settings: Settings,
                  inventory: Path | None) -> list[str]:
    """Register what the console's story needs, if missing; return what was done (for the
    banner). Users: alice/bob/carol; servers: from `inventory` when there are none;
    playbooks: synced from PLAYBOOK_DIR when none is registered."""
    from core import users as core_users

    done: list[str] = []
    with transaction(session_factory) as session:
        added = []
        for username, role in DEMO_USERS:
            slack_id = slack_id_for(username)
            exists = session.scalar(select(User.id).where(
                (func.lower(User.username) == username) | (User.slack_user_id == slack_id)))
            if exists is None:
                core_users.add_user(session, username, slack_user_id=slack_id, role=role,
                                    origin=CONSOLE_ORIGIN)
                added.append(f"{username} ({role})")
        if added:
            done.append("users " + ", ".join(added))
    with transaction(session_factory) as session:
        if not session.scalar(select(func.count(Server.id))) and inventory is not None:
            if not inventory.is_file():
                raise ConsoleSetupError(
                    f"no servers are registered and the inventory {inventory} does not exist: "
                    "run the console from the Playbot checkout, or pass --inventory FILE")
            hosts = _import_inventory(session, inventory)
            done.append(f"servers {', '.join(hosts)} from {inventory}")
    with transaction(session_factory) as session:
        if not session.scalar(select(func.count(Playbook.id))):
            names = _sync_playbooks(session, settings)
            done.append(f"playbooks {', '.join(names)} from {settings.playbook_dir}")
    return done


def _import_inventory(session: Session, inventory: Path) -> list[str]:
    from core import inventory as core_inventory
    from core.errors import InvalidInput

    try:
        report = core_inventory.import_servers(
            session, core_inventory.parse_inventory(inventory), origin=CONSOLE_ORIGIN)
    except InvalidInput as exc:
        raise ConsoleSetupError(str(exc)) from None
    return sorted([*report.created, *report.updated, *report.unchanged])


def _sync_playbooks(session: Session, settings: Settings) -> list[str]:
    from core import playbook_registry
    from core.errors import InvalidInput

    playbook_dir = Path(settings.playbook_dir)
    if not playbook_dir.is_dir():
        raise ConsoleSetupError(
            f"PLAYBOOK_DIR {playbook_dir} is not a directory: run the console from the Playbot "
            "checkout (it uses examples/playbooks), or set PLAYBOOK_DIR")
    try:
        report = playbook_registry.sync_playbooks(session, playbook_dir, origin=CONSOLE_ORIGIN)
    except InvalidInput as exc:
        raise ConsoleSetupError(str(exc)) from None
    return sorted([*report.created, *report.updated, *report.unchanged])


def start_playbot(*, inventory: Path | None = None, threads: int = WORKER_THREADS,
                  **overrides: Any) -> Playbot:
    """Start the embedded Playbot (see the module docstring). `overrides` replace settings.

    Raises bot.settings.SettingsError, ConsoleSetupError.
    """
    from workers.config import WorkerConfig
    from workers.embedded import start_embedded

    closers: list[Callable[[], None]] = []

    def unwind() -> None:
        for closer in reversed(closers):
            closer()

    fake = FakeSlack().start()
    closers.append(fake.stop)
    try:
        settings = console_settings(fake.api_url, **overrides)
        migrate(settings.database_url)
        engine = make_engine(settings.database_url)
        closers.append(engine.dispose)
        session_factory = make_session_factory(engine)
        notes = seed_examples(session_factory, settings,
                              inventory if inventory is not None else default_inventory(settings))
        config = WorkerConfig.from_settings(settings, shutdown_grace=SHUTDOWN_GRACE)
        workers = start_embedded(config, threads=threads)
        closers.append(workers.stop)
        runtime = build_runtime(settings, queue=workers.queue, session_factory=session_factory)
        closers.append(runtime.close)
        web = make_server(runtime, host="127.0.0.1", port=0, threads=4).start()
        closers.append(web.stop)
        assert settings.slack_signing_secret is not None
        sender = SlackSender(web.events_url, settings.slack_signing_secret, fake)
    except BaseException:
        unwind()
        raise
    playbot = Playbot(settings=settings, fake=fake, runtime=runtime, web=web, workers=workers,
                      sender=sender, notes=notes)
    playbot._closers = closers
    return playbot
