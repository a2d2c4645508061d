"""One benchmark figure as a value beside its baseline, printed and written to results.json."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_PATH = Path(__file__).resolve().parent / "results.json"


@dataclass
class Figure:
    """A measured value, the floor it is compared with (same run, same machine), and the ratio.

    `ratio` is value / baseline. `target` says in words what the figure should meet and
    `met` whether it did (None when the figure has no pass/fail target). `extra` holds
    further numbers worth keeping (p50/p99, counts, sizes).
    """

    key: str
    title: str
    value: float
    unit: str
    baseline: float
    baseline_label: str
    target: str = ""
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        if not self.baseline:
            return math.inf if self.value else 1.0
        return self.value / self.baseline

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "title": self.title,
            "value": _round(self.value),
            "unit": self.unit,
            "baseline": _round(self.baseline),
            "baseline_label": self.baseline_label,
            "ratio": _round(self.ratio),
        }
        if self.target:
            data["target"] = self.target
            data["met"] = self.met
        data.update({key: _round(value) for key, value in self.extra.items()})
        return data


def _round(value: Any) -> Any:
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return None
        return round(value, 4 if abs(value) < 10 else 1)
    if isinstance(value, dict):
        return {key: _round(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_round(item) for item in value]
    return value


def _fmt(value: float, unit: str) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f} {unit}"
    if abs(value) >= 10:
        return f"{value:.1f} {unit}"
    return f"{value:.3g} {unit}"


def render(figure: Figure) -> str:
    """Two or three lines for the terminal: value vs baseline, ratio, target and extras."""
    verdict = {True: "MET", False: "MISSED", None: ""}[figure.met]
    lines = [
        f"{figure.key:<28} {_fmt(figure.value, figure.unit):>16}   baseline "
        f"{_fmt(figure.baseline, figure.unit):>16} ({figure.baseline_label})   "
        f"ratio {figure.ratio:.2f}",
    ]
    if figure.target:
        lines.append(f"{'':<28} target: {figure.target} -> {verdict}")
    if figure.extra:
        shown = ", ".join(f"{k}={_fmt(v, '').strip() if isinstance(v, float) else v}"
                          for k, v in figure.extra.items())
        lines.append(f"{'':<28} {shown}")
    return "\n".join(lines)


def summary_table(figures: list[Figure]) -> str:
    """All figures, one line each: value, baseline, ratio and whether the target was met."""
    rows = [f"{'figure':<26} {'value':>16} {'baseline':>16} {'ratio':>7}  target"]
    for figure in figures:
        verdict = {True: "met", False: "MISSED", None: "-"}[figure.met]
        rows.append(f"{figure.key:<26} {_fmt(figure.value, figure.unit):>16} "
                    f"{_fmt(figure.baseline, figure.unit):>16} {figure.ratio:>7.2f}  {verdict}")
    return "\n".join(rows)


def write_results(figures: list[Figure], machine: dict[str, Any], path: Path = RESULTS_PATH,
                  *, quick: bool, merge: bool) -> None:
    """Write every figure to `path`.

    With `merge` (a run of some figures) only those figures' entries are replaced, so
    `python -m bench log_reads` after `python -m bench all` keeps the others; `all` rewrites
    the file. `_machine` describes the latest run.
    """
    existing: dict[str, Any] = {}
    if merge and path.exists():
        try:
            existing = json.loads(path.read_text())
        except ValueError:
            existing = {}
    existing["_machine"] = {**machine, "quick": quick}
    for figure in figures:
        existing[figure.key] = {**figure.as_json(), "quick": quick}
    path.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
