"""A tiny run of every benchmark figure, so `python -m bench` keeps working as the code moves.

Sizes are the "smoke" scale (tens of requests, a few hundred log lines, one run of each
playbook): the numbers mean nothing here, only that each figure runs the real code paths
end to end and reports a value, a baseline measured beside it and their ratio. The
invariants that do not depend on timing are asserted (no log line lost, jobs succeeded).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import pytest

from bench import ack, e2e, fanout, fanout_ssh, ingest, log_reads, memory, slack_calls, soak
from bench.__main__ import main as bench_main
from bench.context import BenchContext, ProductPieceMissing
from bench.results import Figure, write_results
from bench.servers import BenchServers

pytestmark = [pytest.mark.mariadb, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def bench_context(mariadb_server, redis_server) -> Iterator[BenchContext]:
    servers = BenchServers(mariadb=mariadb_server)
    context = BenchContext(servers=servers, scale="smoke", verbose=False)
    yield context
    context.close()
    servers.close()


def run_figure(module, context: BenchContext) -> list[Figure]:
    """Run one figure; a product piece it measures having gone missing is a failure."""
    try:
        return module.run(context)
    except ProductPieceMissing as missing:
        pytest.fail(f"product piece missing: {missing}")


def assert_reported(figures: list[Figure], *keys: str) -> None:
    assert [f.key for f in figures] == list(keys)
    for figure in figures:
        assert figure.value > 0 and math.isfinite(figure.value), figure
        assert figure.baseline > 0 and math.isfinite(figure.baseline), figure
        assert figure.ratio == pytest.approx(figure.value / figure.baseline)
        assert figure.unit
        json.dumps(figure.as_json())


def test_ack_latency_is_measured_for_a_launch_and_a_read_beside_the_bare_app(bench_context):
    figures = run_figure(ack, bench_context)

    assert_reported(figures, "ack_latency.run_playbook", "ack_latency.jobs",
                    "ack_to_reply.run_playbook", "ack_to_reply.burst")
    launch = figures[0].extra
    assert launch["jobs_created"] >= launch["requests"]  # every ack led to a job
    assert launch["p99_ms"] < 3000  # never near Slack's limit, even on a busy machine
    # every measured launch's run message was timed from its ack, at both paces
    assert figures[3].extra["replies_timed"] == launch["requests"]
    assert figures[2].extra["replies_timed"] > 0


def test_log_ingestion_goes_through_the_worker_log_path_and_stores_every_line(bench_context):
    figures = run_figure(ingest, bench_context)

    assert_reported(figures, "log_ingestion")
    extra = figures[0].extra
    assert extra["rows_stored"] == 2 * extra["lines"] * extra["rounds"]


def test_end_to_end_runs_both_playbooks_to_success_beside_plain_ansible(bench_context):
    figures = run_figure(e2e, bench_context)

    assert_reported(figures, "end_to_end.small", "end_to_end.chatty")
    assert figures[1].extra["log_lines"] > figures[0].extra["log_lines"]


def test_slack_calls_are_counted_and_no_log_line_is_lost(bench_context):
    figures = run_figure(slack_calls, bench_context)

    assert_reported(figures, "slack_calls")
    extra = figures[0].extra
    assert extra["nothing_lost"] is True
    assert extra["job_logs_marker_lines"] == 500


def test_log_reads_use_the_query_functions_beside_a_primary_key_lookup(bench_context):
    figures = run_figure(log_reads, bench_context)

    assert_reported(figures, "log_reads.latest_100", "log_reads.middle_page")


def test_memory_reports_the_peak_rss_of_the_web_and_worker_processes(bench_context):
    figures = run_figure(memory, bench_context)

    assert_reported(figures, "memory.web", "memory.worker")
    assert figures[1].value > figures[1].baseline  # a worker weighs more than bare Python


def test_fanout_runs_one_tag_launch_to_the_end_with_every_host_logged(bench_context):
    figures = run_figure(fanout, bench_context)

    assert_reported(figures, "fanout", "fanout.slack_calls")
    extra = figures[0].extra
    assert extra["hosts"] == 3
    assert extra["statuses"] == {"success": 3}
    assert extra["job_logs_complete"] is True, extra["job_logs_incomplete_hosts"]
    assert extra["job_logs_own_ok_lines_min"] == fanout.OK_TASKS


def test_fanout_over_ssh_runs_against_real_ssh_test_hosts(bench_context):
    try:
        fanout_ssh.requirements()
    except ProductPieceMissing as missing:
        pytest.skip(str(missing))

    figures = run_figure(fanout_ssh, bench_context)

    assert_reported(figures, "fanout.ssh", "fanout.ssh.slack_calls")
    extra = figures[0].extra
    assert extra["statuses"] == {"success": 2}
    assert extra["job_logs_complete"] is True, extra["job_logs_incomplete_hosts"]


def test_soak_survives_a_killed_worker_and_a_redis_restart_losing_nothing(bench_context):
    figures = run_figure(soak, bench_context)

    assert_reported(figures, "soak")
    extra = figures[0].extra
    assert extra["acked"] == extra["launches"]
    assert (extra["lost"], extra["run_twice"], extra["stuck"], extra["deadlock_errors"]) == (
        0, 0, 0, 0), extra
    assert "worker_killed_s" in extra and "redis_restarted_s" in extra
    assert figures[0].met is True


def test_results_file_holds_value_unit_baseline_and_ratio_per_figure(tmp_path):
    figure = Figure(key="demo", title="Demo", value=3.0, unit="ms", baseline=2.0,
                    baseline_label="floor", target="< 10 ms", met=True, extra={"p50_ms": 1.5})
    path = tmp_path / "results.json"

    write_results([figure], {"nproc": 2}, path, quick=True, merge=False)

    data = json.loads(path.read_text())
    assert data["demo"]["value"] == 3.0
    assert data["demo"]["unit"] == "ms"
    assert data["demo"]["baseline"] == 2.0
    assert data["demo"]["ratio"] == 1.5
    assert data["demo"]["p50_ms"] == 1.5
    assert data["_machine"]["nproc"] == 2


def test_an_unknown_figure_name_is_refused_with_the_list_of_figures(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_main(["no-such-figure", "--no-write"])

    assert exit_info.value.code == 2
    assert ("ack, ingest, e2e, slack_calls, log_reads, memory, fanout, fanout_ssh"
            in capsys.readouterr().err)
