"""Real `playbot worker` / `playbot clock` processes for the clock and Redis fault tests,
optionally with a skewed wall clock (`skewed_clock/sitecustomize.py` on PYTHONPATH: the
playbot process reads a wrong time; the database server does not)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SKEW_HOOK = Path(__file__).resolve().parent / "skewed_clock"


def playbot_env(world: Any, redis_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a real worker or clock on the test's database, Redis and fake
    Slack, with short heartbeats and grace so faults show within seconds."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PLAYBOT_", "SLACK_")) and k not in ("DATABASE_URL",
                                                                  "REDIS_URL")}
    env.update({
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": world.url,
        "REDIS_URL": redis_url,
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "test-signing-secret",
        "SLACK_API_URL": world.slack.api_url,
        "PLAYBOT_JOBS_CHANNEL": "C_JOBS",
        "PLAYBOOK_DIR": str(world.playbook_dir),
        "PLAYBOT_RUNTIME_DIR": str(tmp_path / "runs"),
        "PLAYBOT_ARCHIVE_DIR": str(tmp_path / "archive"),
        "PLAYBOT_HEARTBEAT_SECONDS": "1",
        "PLAYBOT_RUN_LEASE_SECONDS": "3",
        "PLAYBOT_REAPER_GRACE_SECONDS": "5",
        "PLAYBOT_REDELIVERY_SECONDS": "5",
        "PLAYBOT_AFTER_ACK_THREADS": "0",
    })
    env.update(extra)
    return env


@contextmanager
def playbot(args: list[str], env: dict[str, str], log: Path, *,
            skew: float | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run `playbot ARGS...` until the block ends (then SIGTERM, SIGKILL if it lingers).
    skew: seconds this process's wall clock is off, e.g. -600."""
    env = dict(env)
    if skew is not None:
        env["TEST_CLOCK_SKEW_SECONDS"] = str(skew)
        env["PYTHONPATH"] = os.pathsep.join([str(SKEW_HOOK), env.get("PYTHONPATH", "")])
    out = open(log, "ab")  # noqa: SIM115 - closed below
    process = subprocess.Popen([str(Path(sys.executable).parent / "playbot"), *args], cwd=ROOT,
                               env=env,
                               stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(40)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # anything it left behind
        out.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 60,
             interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def starts(marker: Path) -> int:
    """How many times the playbook ran (it appends a line to its marker file)."""
    return len(marker.read_text().splitlines()) if marker.exists() else 0
