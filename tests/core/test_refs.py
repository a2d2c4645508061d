"""One rule for every job or ticket reference: `#N` is an id, letters mean a uuid, and a bare
number that could be both is refused rather than guessed."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput, UnknownJob
from core.refs import find
from db.models import Job


def _job(world, job_id: str) -> Job:
    job = Job(job_id=job_id, run_id=job_id, playbook_id=world.playbooks["ping"].id,
              server_id=world.servers["web-01"].id, user_id=world.users["alice"].id,
              extra_vars={})
    world.session.add(job)
    world.session.flush()
    return job


def _find(world, ref: str) -> Job:
    return find(world.session, Job, Job.job_id, ref, what="job", not_found=UnknownJob)


def test_a_hash_and_a_number_is_always_the_primary_key(world):
    # given job 1, and another job whose uuid starts with the digits 000001
    first = _job(world, "3f2a9c1e-0000-4000-8000-000000000001")
    _job(world, "00000100-0000-4000-8000-000000000002")
    # when the user writes #<id>, then it is that job, never the uuid that starts alike
    assert _find(world, f"#{first.id}") is first
    assert _find(world, f"#{first.id:06d}") is first


def test_text_with_letters_is_always_a_uuid_prefix(world):
    job = _job(world, "abcdef12-0000-4000-8000-000000000001")
    assert _find(world, "ABCDEF12") is job
    assert _find(world, job.job_id) is job


def test_a_bare_number_that_is_both_an_id_and_a_uuid_prefix_is_refused_not_guessed(world):
    # given job N and a job whose uuid starts with N written on six digits
    first = _job(world, "3f2a9c1e-0000-4000-8000-000000000001")
    padded = f"{first.id:06d}"
    _job(world, f"{padded}00-0000-4000-8000-000000000002")

    # when the user types the bare number, then they are asked which they meant
    with pytest.raises(InvalidInput, match=f"#{padded}"):
        _find(world, padded)


def test_a_bare_number_that_is_only_one_of_the_two_is_that_one(world):
    first = _job(world, "3f2a9c1e-0000-4000-8000-000000000001")
    by_uuid = _job(world, "98765400-0000-4000-8000-000000000002")
    assert _find(world, str(first.id)) is first
    assert _find(world, "987654") is by_uuid


@pytest.mark.parametrize("ref", ["#abc", "#", "#12x", "#" + "9" * 30])
def test_a_hash_before_anything_but_a_number_is_not_found(world, ref):
    with pytest.raises((UnknownJob, InvalidInput)):
        _find(world, ref)


def test_an_unknown_number_is_not_found(world):
    with pytest.raises(UnknownJob):
        _find(world, "4242")
    with pytest.raises(UnknownJob):
        _find(world, "#4242")
