"""Runs figures in order on one set of servers and collects what each measured."""

from __future__ import annotations

import importlib
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from bench.context import BenchContext, ProductPieceMissing
from bench.machine import describe
from bench.results import Figure, render
from bench.servers import BenchServers

# name -> module; the order is the order of `all` (memory last: it reuses what came before).
FIGURES: dict[str, str] = {
    "ack": "bench.ack",
    "ingest": "bench.ingest",
    "e2e": "bench.e2e",
    "slack_calls": "bench.slack_calls",
    "log_reads": "bench.log_reads",
    "memory": "bench.memory",
    "fanout": "bench.fanout",
    "fanout_ssh": "bench.fanout_ssh",
    "api_logs": "bench.api_logs",
    "soak": "bench.soak",
}
ALIASES = {str(number): name for number, name in enumerate(FIGURES, start=1)}


@dataclass
class RunOutcome:
    figures: list[Figure] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # figure name -> why it did not run
    machine: dict[str, Any] = field(default_factory=dict)


def resolve_names(requested: list[str]) -> list[str]:
    """`all` or figure names / numbers → figure names in run order; ValueError for unknown."""
    if requested == ["all"]:
        return list(FIGURES)
    names = []
    for raw in requested:
        name = ALIASES.get(raw, raw)
        if name not in FIGURES:
            raise ValueError(f"unknown figure {raw!r}; choose all or one of {', '.join(FIGURES)}")
        names.append(name)
    return names


def run_figures(names: list[str], *, scale: str = "full", verbose: bool = True,
                servers: BenchServers | None = None) -> RunOutcome:
    """Run the named figures in order and print each as it completes.

    A figure whose product pieces are missing, or that crashes, is reported (with its
    traceback) and the run goes on with the next one.
    """
    outcome = RunOutcome()
    load_at_start = os.getloadavg()[0]
    own_servers = servers is None
    servers = servers or BenchServers()
    context = BenchContext(servers=servers, scale=scale, verbose=verbose)
    try:
        if "ingest" in names and names[0] != "ingest":
            # The ingest figure replays the events of a real run: record them while the
            # servers of the first figure start (figures settle() before measuring).
            from bench.ingest import record_events_now

            context.prepare("chatty_events", lambda: record_events_now(context))
        for name in names:
            module = importlib.import_module(FIGURES[name])
            print(f"== {name}: {module.TITLE}", flush=True)
            started = time.monotonic()
            try:
                results = module.run(context)
            except ProductPieceMissing as missing:
                outcome.problems[name] = f"product piece missing: {missing}"
                print(f"   NOT RUN - {outcome.problems[name]}", flush=True)
                continue
            except Exception as error:  # noqa: BLE001 - reported with its traceback, run goes on
                traceback.print_exc()
                outcome.problems[name] = f"failed: {type(error).__name__}: {error}"
                print(f"   FAILED - {outcome.problems[name]}", flush=True)
                continue
            for figure in results:
                print(render(figure), flush=True)
            print(f"   ({time.monotonic() - started:.1f}s)", flush=True)
            outcome.figures.extend(results)
        outcome.machine = {**describe(servers.versions()),
                           "load_average_1m_at_start": round(load_at_start, 2)}
    finally:
        context.close()
        if own_servers:
            servers.close()
    return outcome
