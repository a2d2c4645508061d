"""The playbooks the benchmarks run, written into a playbook directory of their own.

- `small`: three quick tasks (ping, debug, command) — the fixed cost of a job.
- `chatty`: a 200-item loop (hundreds of events) and one task that prints `dump_lines`
  lines — thousands of lines of output, the cost per line.
- `deploy`: the small playbook with a declared variable (`version`, a sidecar
  `deploy.playbot.yml`), so repeated launches differ by their vars as real deploys do
  (the product answers an identical launch still pending with the existing job).
- `lines_N`: prints exactly N marker lines `line-000001` ... so job_logs can be counted.

All run against `hosts: all` with no facts; the inventory is one host with
`ansible_connection=local` (the worker builds it from the `servers` row; the plain
`ansible-playbook` baseline gets the same host and variables from `inventory_file`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.context import BenchContext

MARKER = "line-"

SMALL = """\
- name: small
  hosts: all
  gather_facts: false
  tasks:
    - name: check the host answers
      ping:
    - name: say hello
      debug:
        msg: hello from the benchmark
    - name: run a command
      command: "true"
      changed_when: false
"""

CHATTY = """\
- name: chatty
  hosts: all
  gather_facts: false
  tasks:
    - name: roll out step by step
      debug:
        msg: "step {{{{ item }}}} of the rollout"
      loop: "{{{{ range(1, {loop_items} + 1) | list }}}}"
    - name: produce output
      shell: seq -f '{marker}%06g' {dump_lines}
      register: out
      changed_when: false
    - name: show it
      debug:
        var: out.stdout_lines
"""

DEPLOY_SIDECAR = """\
description: The small playbook with a declared variable (benchmarks)
variables:
  version: {type: string, required: true, pattern: '^[0-9][0-9.]*$', description: Release}
"""

LINES = """\
- name: lines
  hosts: all
  gather_facts: false
  tasks:
    - name: produce {count} lines
      shell: seq -f '{marker}%06g' {count}
      register: out
      changed_when: false
    - name: show them
      debug:
        var: out.stdout_lines
"""


def chatty_size(ctx: BenchContext) -> dict[str, int]:
    """The chatty playbook's loop and output sizes at a run's scale (`write_playbooks` kwargs)."""
    return {"chatty_loop": ctx.size(200, 200, smoke=20),
            "chatty_dump": ctx.size(3000, 3000, smoke=200)}


def write_playbooks(directory: Path, *, chatty_loop: int = 200, chatty_dump: int = 3000,
                    line_counts: tuple[int, ...] = ()) -> dict[str, Path]:
    """Write the benchmark playbooks into `directory`; name -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    texts = {
        "small": SMALL,
        "deploy": SMALL.replace("name: small", "name: deploy"),
        "chatty": CHATTY.format(loop_items=chatty_loop, dump_lines=chatty_dump, marker=MARKER),
    }
    for count in line_counts:
        texts[f"lines_{count}"] = LINES.format(count=count, marker=MARKER)
    (directory / "deploy.playbot.yml").write_text(DEPLOY_SIDECAR)
    paths = {}
    for name, text in texts.items():
        path = directory / f"{name}.yml"
        path.write_text(text)
        paths[name] = path
    return paths


def inventory_file(path: Path, hostname: str = "local") -> Path:
    """An INI inventory with the one local host, for plain `ansible-playbook`.

    Same host variables as the worker's inventory for a `connection: local` server: local
    connection, and this virtualenv's interpreter (no interpreter discovery).
    """
    path.write_text(f"{hostname} ansible_connection=local "
                    f"ansible_python_interpreter={sys.executable}\n")
    return path
