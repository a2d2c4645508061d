"""`core.jobs.retry` / `retry_failed` any number of times: keyed on the request, and a job
whose retry is still in progress is answered with that retry instead of a second one."""

from __future__ import annotations

from core import jobs
from db.models import JobStatus
from tests.core.test_jobs import _ended, run


def _fail(world, job) -> None:  # type: ignore[no-untyped-def]
    job.status = JobStatus.failed
    job.error_message = f"Task 'ping' failed on {job.server.hostname}"
    world.session.commit()


def test_retry_while_a_retry_is_in_progress_answers_with_it_whoever_asks(world, policy):
    # given a failed job retried once by oscar, that retry still pending
    [failed] = run(world, policy, target="web-01").jobs
    _fail(world, failed)
    first = jobs.retry(world.session, world.user("oscar"), failed.job_id,
                       request_key="click-1", policy=policy)
    world.session.commit()

    # when olga clicks Retry on the original too (another click, another user)
    again = jobs.retry(world.session, world.user("olga"), failed.job_id,
                       request_key="click-2", policy=policy)

    # then she is answered with oscar's retry, nothing new
    assert again.duplicate and [j.id for j in again.jobs] == [first.jobs[0].id]
    assert again.already_running == again.jobs


def test_retry_after_the_retry_ended_makes_a_new_job_every_time(world, policy):
    # given a failed job
    [failed] = run(world, policy, target="web-01").jobs
    _fail(world, failed)
    made = []
    for click in range(3):
        # when it is retried, and that retry fails again
        result = jobs.retry(world.session, world.user("oscar"), failed.job_id,
                            request_key=f"click-{click}", policy=policy)
        assert not result.duplicate
        made.append(result.jobs[0])
        result.jobs[0].status = JobStatus.failed
        world.session.commit()
    # then each retry is a new job of the original
    assert len({j.id for j in made}) == 3
    assert {j.retry_of_id for j in made} == {failed.id}


def test_retry_failed_skips_the_hosts_whose_retry_is_in_progress(world, policy):
    # given a run whose two servers failed; one of them retried alone and still pending
    result = run(world, policy, target="tag:web", check_mode=True, who="olga")
    _ended(world, result, {"web-01": JobStatus.failed, "web-02": JobStatus.failed,
                           "prod-01": JobStatus.success})
    web01 = next(j for j in result.jobs if j.server.hostname == "web-01")
    alone = jobs.retry(world.session, world.user("olga"), web01.job_id, request_key="k1",
                       policy=policy)
    world.session.commit()

    # when the run's failed hosts are retried
    again = jobs.retry_failed(world.session, world.user("oscar"), result.run_id,
                              request_key="k2", policy=policy)

    # then only web-02 is launched; web-01's retry in progress is pointed at
    assert [j.server.hostname for j in again.jobs] == ["web-02"]
    assert [j.id for j in again.already_running] == [alone.jobs[0].id]
