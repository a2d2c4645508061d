"""core.run_messages: a run's state version grows with every change of any of its jobs, and
the version drawn on its message only ever moves forward."""

from __future__ import annotations

from core import jobs, run_messages
from db.models import JobStatus


def launch(world, policy, target="tag:web"):
    result = jobs.launch(world.session, world.user("oscar"), playbook="ping", target=target,
                         raw_vars={}, check_mode=False, request_key=None, channel_id="C_OPS",
                         policy=policy)
    world.session.commit()
    return result.jobs[0].run_id


def version(world, run_id):
    world.session.expire_all()
    return run_messages.run_state(world.session, run_id).version


def test_every_change_of_a_job_of_the_run_grows_the_runs_state_version(world, policy):
    # given a run on two servers (web-01, and prod-01 waiting for approval)
    run_id = launch(world, policy)
    seen = [version(world, run_id)]
    state = run_messages.run_state(world.session, run_id)
    web = next(j for j in state.jobs if j.status == JobStatus.pending)

    # when its jobs change: cancel one through the core (a bulk UPDATE), then another by
    # assigning its status on the loaded row (the ORM path)
    jobs.cancel(world.session, world.user("oscar"), web.job_id)
    world.session.commit()
    seen.append(version(world, run_id))
    waiting = next(j for j in run_messages.run_state(world.session, run_id).jobs
                   if j.status == JobStatus.awaiting_approval)
    waiting.status = JobStatus.cancelled
    world.session.commit()
    seen.append(version(world, run_id))
    # a change that shows nothing new (where the message is) does not count
    jobs.attach_message(world.session, web.job_id, "C_OPS", "1700000000.000100")
    world.session.commit()
    seen.append(version(world, run_id))

    # then the version grew with each change of state, and only then
    assert seen[0] < seen[1] < seen[2] == seen[3]


def test_a_claim_for_an_older_state_than_the_one_drawn_is_refused(world, policy):
    # given a run whose message was drawn at its current version
    run_id = launch(world, policy, target="web-01")
    old = run_messages.run_state(world.session, run_id)
    [job] = old.jobs
    jobs.cancel(world.session, world.user("oscar"), job.job_id)
    world.session.commit()
    new = run_messages.run_state(world.session, run_id)

    # when the newer state is claimed first, then the older one
    assert run_messages.claim(world.session, new.first_pk, new.version)
    refused = not run_messages.claim(world.session, old.first_pk, old.version)
    again = run_messages.claim(world.session, new.first_pk, new.version)
    world.session.commit()

    # then the older is refused, the same version may be drawn again, and the drawn
    # version stays the newer
    assert refused and again
    assert run_messages.drawn(world.session, new.first_pk) == new.version
