"""`python -m tests.workers.worker_process CONFIG_JSON`: a worker process for the tests that
kill or stop one (the CLI's `playbot worker` does the same with the real settings)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from workers.config import WorkerConfig
from workers.main import run_worker

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s "
                                                   "[%(playbot_context)s] %(message)s")
    values = json.loads(sys.argv[1])
    threads = int(values.pop("threads", 1))
    for key in ("playbook_dir", "runtime_dir", "archive_dir"):
        values[key] = Path(values[key])
    sys.exit(run_worker(WorkerConfig(**values), threads=threads))
