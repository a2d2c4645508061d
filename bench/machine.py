"""A description of the machine a run happened on: CPUs, memory, server and tool versions."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _ansible_version() -> str | None:
    try:
        tool = Path(sys.executable).parent / "ansible-playbook"
        out = subprocess.run([str(tool) if tool.exists() else "ansible-playbook", "--version"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = out.stdout.splitlines()[0] if out.stdout else ""
    return first.split("[", 1)[-1].rstrip("]").replace("core ", "") if first else None


def describe(server_versions: dict[str, str]) -> dict[str, Any]:
    """nproc, memory, CPU model, Python, MariaDB/Redis versions and ansible-core."""
    return {
        "nproc": os.cpu_count(),
        "memory_gib": _mem_total_gib(),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ansible_core": _ansible_version(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        **server_versions,
    }
