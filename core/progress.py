"""The progress of a playbook run: tasks done and Ansible's counters per host.

Filled by the worker from Ansible's events, stored as `jobs.recap` when the job ends, and
drawn by `slackui.job_message`. A plain dataclass with no dependencies, so any layer can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

COUNTERS = ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")


@dataclass
class RunProgress:
    """What a running playbook has done so far: tasks started, counters per host.

    `hosts` maps a host name to counters named like Ansible's recap (ok, changed, failed,
    unreachable, skipped, rescued, ignored). `final` is True once Ansible's own recap
    (playbook_on_stats) replaced the running counts.
    """

    tasks_done: int = 0
    current_task: str | None = None
    hosts: dict[str, dict[str, int]] = field(default_factory=dict)
    final: bool = False

    def count(self, host: str, counter: str, n: int = 1) -> None:
        counters = self.hosts.setdefault(host, {name: 0 for name in COUNTERS})
        counters[counter] = counters.get(counter, 0) + n

    def copy(self) -> RunProgress:
        return RunProgress(self.tasks_done, self.current_task,
                           {h: dict(c) for h, c in self.hosts.items()}, self.final)

    def to_recap(self) -> dict[str, Any]:
        """The JSON stored in `jobs.recap`: {"hosts": {host: {counter: n}}, "tasks": n}."""
        return {"hosts": {h: dict(c) for h, c in self.hosts.items()}, "tasks": self.tasks_done}

    @classmethod
    def from_recap(cls, recap: Mapping[str, Any] | None) -> RunProgress:
        """The progress stored by `to_recap` (tolerates a bare {host: counters} mapping)."""
        if not recap:
            return cls()
        hosts = recap.get("hosts", recap if "tasks" not in recap else {}) or {}
        return cls(tasks_done=int(recap.get("tasks") or 0),
                   hosts={str(h): {str(k): int(v) for k, v in c.items()}
                          for h, c in hosts.items() if isinstance(c, Mapping)},
                   final=True)
