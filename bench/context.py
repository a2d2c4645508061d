"""What every figure receives: the servers, the size (full or quick), a log, shared findings."""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import Any

from bench.servers import BenchServers


class ProductPieceMissing(RuntimeError):
    """A product module or function a figure measures does not exist (yet) or does not fit.

    The message names exactly what is needed, so it can go to the owner as is.
    """


@dataclass
class BenchContext:
    """Shared state of one benchmark run.

    `shared` carries measurements one figure makes for another (the web process's peak RSS
    measured while serving the ack benchmark is reused by the memory figure).
    """

    servers: BenchServers
    scale: str = "full"  # "full", "quick" (--quick) or "smoke" (the test suite's tiny run)
    verbose: bool = True
    shared: dict[str, Any] = field(default_factory=dict)
    _start: float = field(default_factory=time.monotonic)
    _cleanups: list[Callable[[], object]] = field(default_factory=list)
    _prepared: dict[str, Future[Any]] = field(default_factory=dict)

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"  [{time.monotonic() - self._start:6.1f}s] {message}", file=sys.stderr,
                  flush=True)

    def defer(self, cleanup: Callable[[], object]) -> None:
        """Run `cleanup` when the whole run ends (last deferred, first run)."""
        self._cleanups.append(cleanup)

    def close(self) -> None:
        self.settle()
        while self._cleanups:
            self._cleanups.pop()()

    def prepare(self, name: str, work: Callable[[], Any]) -> None:
        """Start `work` in the background now (e.g. while servers start); `prepared(name,
        ...)` gets its result. Figures call `settle()` before they measure anything."""
        future: Future[Any] = Future()

        def run() -> None:
            try:
                future.set_result(work())
            except BaseException as error:  # handed to whoever awaits it
                future.set_exception(error)

        threading.Thread(target=run, name=f"bench-prepare-{name}", daemon=True).start()
        self._prepared[name] = future

    def prepared(self, name: str, work: Callable[[], Any]) -> Any:
        """The result of `prepare(name, ...)` (waited for), or of `work()` run now."""
        future = self._prepared.pop(name, None)
        return future.result() if future is not None else work()

    def settle(self) -> None:
        """Wait until background preparation is done, so it does not disturb a measurement."""
        for future in list(self._prepared.values()):
            wait([future])

    @property
    def quick(self) -> bool:
        return self.scale != "full"

    def size(self, full: int, quick: int, smoke: int | None = None) -> int:
        """The size of a workload at this run's scale (smoke falls back to quick)."""
        if self.scale == "smoke" and smoke is not None:
            return smoke
        return quick if self.quick else full


def require(module: str, *names: str) -> Any:
    """Import `module` and check it has `names`; raise ProductPieceMissing naming what is absent."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name and (error.name == module or module.startswith(error.name + ".")):
            raise ProductPieceMissing(f"module {module} does not exist yet") from None
        raise
    missing = [name for name in names if not hasattr(mod, name)]
    if missing:
        raise ProductPieceMissing(f"{module} has no {', '.join(missing)}")
    return mod
