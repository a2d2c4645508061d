"""workers.broker and workers.actors: the broker is set up once, actors are declared on it
with options chosen on purpose."""

from __future__ import annotations

import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Retries, TimeLimit

from workers import actors
from workers.broker import current_broker, reset_broker, setup_broker
from workers.config import MAX_JOB_TIMEOUT_SECONDS
from workers.middleware import DatabaseMiddleware


@pytest.fixture(autouse=True)
def _fresh_broker():
    reset_broker()
    yield
    reset_broker()


def test_setting_up_the_same_broker_twice_returns_the_same_one():
    first = setup_broker(None)

    assert setup_broker(None) is first is current_broker()
    assert isinstance(first, StubBroker)


def test_run_job_never_retries_and_outlives_the_longest_playbook():
    broker = setup_broker(None)

    run_job = actors.get("run_job")

    assert run_job.broker is broker
    assert run_job.options["max_retries"] == 0
    assert run_job.options["time_limit"] > MAX_JOB_TIMEOUT_SECONDS * 1000
    assert {a.options["max_retries"] for a in actors.declare(broker).values()} == {0}


def test_the_middleware_is_chosen_on_purpose():
    broker = setup_broker(None)

    kinds = [type(m) for m in broker.middleware]

    assert kinds[:2] == [TimeLimit, Retries]
    assert DatabaseMiddleware in kinds
    assert not any(m.__name__ in {"AgeLimit", "Callbacks", "Pipelines"} for m in kinds)
    retries = next(m for m in broker.middleware if isinstance(m, Retries))
    assert retries.max_retries == 0


def test_a_new_url_builds_a_new_broker_with_its_own_actors():
    stub = setup_broker(None)

    redis_broker = setup_broker("redis://127.0.0.1:1/0")

    assert redis_broker is not stub
    assert actors.get("run_job").broker is redis_broker
