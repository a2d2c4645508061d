"""What every figure receives: the servers, the size (full or quick), a log, shared findings."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
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

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"  [{time.monotonic() - self._start:6.1f}s] {message}", file=sys.stderr,
                  flush=True)

    def defer(self, cleanup: Callable[[], object]) -> None:
        """Run `cleanup` when the whole run ends (last deferred, first run)."""
        self._cleanups.append(cleanup)

    def close(self) -> None:
        while self._cleanups:
            self._cleanups.pop()()

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
    import importlib

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
