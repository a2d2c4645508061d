"""workers.run_dirs: a run's directory is held while its run lives; a worker starting later
removes what dead workers left (their secrets) and nothing a live run, or anyone else, owns."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from workers.run_dirs import RunDir, sweep

HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from workers.run_dirs import RunDir
    run = RunDir.create(Path(sys.argv[1]), sys.argv[2])
    (run.path / "extravars").write_text("password: hunter2")
    print("held", flush=True)
    time.sleep(120)
""")


def _holder(runtime: Path, name: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(runtime), name],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    return process


def test_a_worker_killed_mid_run_leaves_a_directory_the_next_sweep_removes(tmp_path):
    # given a run directory with a secret whose worker was killed
    runtime = tmp_path / "runs"
    worker = _holder(runtime, "job-dead")
    worker.kill()
    worker.wait()
    assert (runtime / "job-dead" / "extravars").exists()

    # when a worker starts and sweeps
    removed = sweep(runtime)

    # then the directory is gone
    assert removed == ["job-dead"]
    assert not (runtime / "job-dead").exists()


def test_the_sweep_keeps_a_live_runs_directory_and_what_is_not_a_run(tmp_path):
    # given a run held by another live worker, the ssh control dir and a stranger's dir
    runtime = tmp_path / "runs"
    live = _holder(runtime, "job-live")
    (runtime / "cp").mkdir()
    (runtime / "notes").mkdir()
    try:
        # when a second worker on the machine starts and sweeps
        removed = sweep(runtime)

        # then nothing is removed
        assert removed == []
        assert (runtime / "job-live" / "extravars").exists()
        assert (runtime / "cp").is_dir() and (runtime / "notes").is_dir()
    finally:
        live.kill()
        live.wait()


def test_a_finished_run_removes_its_directory(tmp_path):
    run = RunDir.create(tmp_path / "runs", "job-done")
    (run.path / "extravars").write_text("password: hunter2")

    run.remove()

    assert not (tmp_path / "runs" / "job-done").exists()
    assert sweep(tmp_path / "runs") == []


def test_a_sweep_racing_a_new_run_never_takes_its_directory(tmp_path):
    # a run being created while another worker sweeps keeps its directory
    runtime = tmp_path / "runs"
    runtime.mkdir()
    deadline = time.monotonic() + 2
    made = 0
    while time.monotonic() < deadline:
        sweeper = subprocess.Popen(
            [sys.executable, "-c", "import sys; from pathlib import Path; "
             "from workers.run_dirs import sweep; sweep(Path(sys.argv[1]))", str(runtime)])
        runs = [RunDir.create(runtime, f"job-{made}-{i}") for i in range(20)]
        sweeper.wait()
        assert all(r.path.is_dir() for r in runs)
        for run in runs:
            run.remove()
        made += 1
    assert made >= 1
