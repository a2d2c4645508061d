"""Job templates: saved with validated variables, run through the launch path, owned."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core import templates
from core.errors import InvalidInput, InvalidVars, NotAllowed, UnknownPlaybook, UnknownTemplate
from db.models import AuditLog, JobStatus


def save(world, who="oscar", name="deploy-web", playbook="deploy", target="web-01",
         raw_vars=None, **kwargs):
    return templates.save_template(world.session, world.user(who), name=name,
                                   playbook=playbook, target=target,
                                   raw_vars=raw_vars if raw_vars is not None
                                   else {"version": "1.2"}, **kwargs)


def actions(session):
    return [row.action for row in session.scalars(select(AuditLog).order_by(AuditLog.id))]


def test_a_saved_template_keeps_its_typed_variables_and_is_audited(world):
    # when
    template = save(world, raw_vars={"version": "1.2", "replicas": "3"},
                    overridable=["version"], description="the web tier")
    world.session.commit()
    # then
    assert (template.variables, template.overridable, template.owner.username) == (
        {"version": "1.2", "replicas": 3}, ["version"], "oscar")
    assert template.playbook_hash == world.playbooks["deploy"].file_hash
    assert "template.add" in actions(world.session)


def test_a_template_whose_variables_do_not_fit_the_playbook_is_refused_when_saved(world):
    with pytest.raises(InvalidVars, match="replicas"):
        save(world, raw_vars={"version": "1.2", "replicas": "99"})
    with pytest.raises(InvalidVars, match="not a variable of playbook"):
        save(world, overridable=["colour"])
    with pytest.raises(InvalidVars, match="never be set from chat"):
        save(world, overridable=["ansible_host"])


def test_a_viewer_cannot_save_and_an_operator_cannot_change_someone_elses(world):
    with pytest.raises(NotAllowed):
        save(world, who="vera")
    save(world)
    world.session.commit()
    with pytest.raises(NotAllowed):
        save(world, who="olga", replace=True)
    with pytest.raises(NotAllowed):
        templates.remove_template(world.session, world.user("olga"), "deploy-web")
    # an admin manages all
    templates.remove_template(world.session, world.user("alice"), "deploy-web")
    world.session.commit()
    assert templates.list_templates(world.session) == []
    assert actions(world.session)[-1] == "template.remove"


def test_the_same_name_twice_is_refused_unless_replaced(world):
    save(world)
    with pytest.raises(InvalidInput, match="already exists"):
        save(world, name="Deploy-Web")
    updated = save(world, replace=True, raw_vars={"version": "2.0"})
    assert updated.variables == {"version": "2.0"}


def test_running_a_template_launches_its_playbook_with_the_overrides_it_allows(world, policy):
    # given
    save(world, overridable=["version"])
    world.session.commit()
    # when
    launched = templates.launch_template(world.session, world.user("olga"), "deploy-web",
                                         {"version": "1.3"}, request_key="k1",
                                         channel_id="C", policy=policy)
    world.session.commit()
    # then
    [job] = launched.result.jobs
    assert (job.playbook.name, job.server.hostname, job.user.username, job.status) == (
        "deploy", "web-01", "olga", JobStatus.pending)
    assert job.extra_vars["version"] == "1.3" and job.extra_vars["replicas"] == 2
    assert launched.notes == []
    assert actions(world.session)[-2:] == ["job.launch", "template.run"]


def test_a_variable_the_template_does_not_let_you_set_is_refused(world, policy):
    save(world, overridable=["version"])
    with pytest.raises(InvalidVars, match="does not let a launch set `replicas`"):
        templates.launch_template(world.session, world.user("olga"), "deploy-web",
                                  {"replicas": "5"}, request_key=None, channel_id=None,
                                  policy=policy)


def test_a_template_whose_playbook_changed_or_disappeared_says_so(world, policy):
    # given
    save(world)
    world.session.commit()
    template = templates.get_template(world.session, "deploy-web")
    template.playbook_hash = "0" * 64  # the playbook was re-synced since the template was saved
    world.session.commit()
    # when
    launched = templates.launch_template(world.session, world.user("oscar"), "deploy-web", {},
                                         request_key=None, channel_id=None, policy=policy)
    world.session.commit()
    # then it still runs (its variables fit) and says the playbook changed
    assert len(launched.result.jobs) == 1
    assert "changed since template `deploy-web` was saved" in launched.notes[0]
    book = world.playbooks["deploy"]
    # and once its playbook is deactivated, it is refused, naming the playbook
    book.is_active = False
    world.session.commit()
    with pytest.raises(UnknownPlaybook, match="no longer registered"):
        templates.launch_template(world.session, world.user("oscar"), "deploy-web", {},
                                  request_key=None, channel_id=None, policy=policy)


def test_an_unknown_template_gets_the_closest_names(world):
    save(world)
    with pytest.raises(UnknownTemplate, match="deploy-web"):
        templates.get_template(world.session, "deploy-wbe")
