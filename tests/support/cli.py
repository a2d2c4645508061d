"""Run the `playbot` command in-process, the way an operator would, with a fresh environment."""

from __future__ import annotations

from collections.abc import Mapping

from click.testing import Result
from typer.testing import CliRunner

from bot.cli import app, context


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> Result:
    """Run `playbot ARGS` with `env` added to the environment; settings are re-read.

    The result has `exit_code`, `stdout` and `stderr`.
    """
    context.settings.cache_clear()
    context._factory.cache_clear()
    try:
        return CliRunner().invoke(app, list(args), env=dict(env or {}), catch_exceptions=False)
    finally:
        context.settings.cache_clear()
        context._factory.cache_clear()
