"""A tiny run of the api_logs figure (`python -m bench api_logs`): the real `playbot web`
answers 20 pollers' `GET /api/jobs/{id}/logs?after=N`, each poll a full page, and the
figure reports its p99 beside db.queries' (the numbers mean nothing at this size)."""

from __future__ import annotations

import math

import pytest

from bench import api_logs
from bench.context import BenchContext
from bench.servers import BenchServers

pytestmark = [pytest.mark.mariadb, pytest.mark.redis, pytest.mark.slow]


def test_log_polling_is_measured_over_http_beside_db_queries(mariadb_server, redis_server):
    servers = BenchServers(mariadb=mariadb_server)
    context = BenchContext(servers=servers, scale="smoke", verbose=False)
    try:
        [figure] = api_logs.run(context)
    finally:
        context.close()
        servers.close()

    assert figure.key == "api_logs"
    assert figure.value > 0 and figure.baseline > 0 and math.isfinite(figure.ratio)
    extra = figure.extra
    assert extra["polls"] == extra["pollers"] * 5 and extra["pollers"] == 20
    assert extra["log_view_audit_rows"] == 20  # one per token and job, not one per poll
