"""Job templates from Slack: `/templates add|show|remove`, `/run-template`, the Run button and
App Home's picker — signed requests through the real app and FakeSlack."""

from __future__ import annotations

import pytest

from db.models import JobStatus, JobTemplate
from slackui import ids
from tests.handlers.fixtures import ADMIN, OPERATOR, OTHER_ADMIN, OTHER_OPERATOR, VIEWER

TEMPLATES = ids.CMD_TEMPLATES
RUN = ids.CMD_RUN_TEMPLATE
ADD = "add deploy-web deploy local version=1.2 replicas=3 --override=version " \
      "'--description=the <web> tier'"


def add(slack, text=ADD, user=OPERATOR):
    return slack.command(TEMPLATES, text, user=user)


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_an_operator_saves_a_template_and_anyone_runs_it_with_the_variables_it_allows(slack):
    # given
    saved = add(slack)
    assert "Saved template *deploy-web*" in saved.reply_text
    assert "the &lt;web&gt; tier" in saved.reply_text  # user text is never markup
    # when another operator runs it, setting the one variable it lets them set
    result = slack.command(RUN, "deploy-web version=1.3", user=OTHER_OPERATOR)
    # then one job of the template's playbook and target, posted and queued
    assert "Received: template *deploy-web*" in result.ack_text  # honest: not yet started
    [job] = slack.jobs()
    assert (job.playbook.name, job.server.hostname, job.status) == (
        "deploy", "local", JobStatus.pending)
    assert job.extra_vars["version"] == "1.3" and job.extra_vars["replicas"] == 3
    assert slack.queue.enqueued == [job.job_id]
    assert result.posted and "deploy" in result.posted_text
    # audited: the save, the launch and the template's run
    [row] = slack.audit("template.add")
    assert row.details["variables"] == {"version": "1.2", "replicas": 3}
    [run] = slack.audit("template.run")
    assert run.resource_id == "deploy-web" and run.details["overrides"] == {"version": "1.3"}


def test_a_variable_the_template_does_not_allow_is_refused_and_nothing_runs(slack):
    add(slack)
    result = slack.command(RUN, "deploy-web replicas=5", user=OPERATOR)
    assert "does not let a launch set `replicas`" in result.reply_text
    assert "`version`" in result.reply_text
    assert slack.jobs() == []
    [denied] = slack.audit("template.run")
    assert denied.details["outcome"] == "denied"


def test_a_template_is_validated_when_saved(slack):
    result = add(slack, "add bad deploy local version=1.2 replicas=99")
    assert "replicas" in result.reply_text and "Saved" not in result.reply_text
    result = add(slack, "add bad deploy local version=1.2 --override=colour")
    assert "not a variable of playbook `deploy`" in result.reply_text
    result = add(slack, "add bad deploy nowhere version=1.2")
    assert "nowhere" in result.reply_text
    with slack.session_factory() as session:
        assert session.query(JobTemplate).count() == 0


def test_templates_list_and_show_and_a_viewer_cannot_save_one(slack):
    add(slack)
    listing = slack.command(TEMPLATES, "", user=VIEWER)
    assert "deploy-web" in listing.reply_text and "deploy on `local`" in listing.reply_text
    shown = slack.command(TEMPLATES, "show deploy-web", user=VIEWER)
    assert "A launch may set" in shown.reply_text and "`version`" in shown.reply_text
    refused = add(slack, ADD.replace("deploy-web", "mine"), user=VIEWER)
    assert "operator role" in refused.reply_text
    mistyped = slack.command(RUN, "deploy-wbe", user=OPERATOR)
    assert "deploy-web" in mistyped.reply_text  # the closest name


def test_only_the_owner_or_an_admin_removes_a_template(slack):
    add(slack)
    refused = slack.command(TEMPLATES, "remove deploy-web", user=OTHER_OPERATOR)
    assert "admin" in refused.reply_text
    removed = slack.command(TEMPLATES, "remove deploy-web", user=ADMIN)
    assert "Removed template *deploy-web*" in removed.reply_text
    denied, row = slack.audit("template.remove")
    assert denied.details["outcome"] == "denied"
    assert (row.details["outcome"], row.details["owner"]) == ("allowed", "alice")


def test_a_production_template_needs_an_admin_other_than_the_requester(slack):
    add(slack, "add prod-ping ping prod-local", user=ADMIN)
    result = slack.command(RUN, "prod-ping", user=ADMIN)
    [job] = slack.jobs()
    assert job.status == JobStatus.awaiting_approval
    assert "approval of an admin other than you" in result.reply_text
    assert slack.queue.enqueued == []
    assert OTHER_ADMIN  # the approval itself is the ordinary approval card's


def test_the_run_button_and_the_app_home_picker_run_a_template_as_saved(slack):
    add(slack)
    home = slack.open_home(OPERATOR)
    [view] = [c.params["view"] for c in home.calls_to("views.publish")]
    assert "deploy-web" in str(view)
    picked = slack.click(ids.ACTION_TEMPLATE_RUN, "", user=OPERATOR, channel=None,
                         view={"id": "V_HOME", "type": "home"},
                         action={"type": "static_select",
                                 "selected_option": {"value": "deploy-web"}})
    [job] = slack.jobs()
    assert job.extra_vars["version"] == "1.2"
    assert picked.status == 200
    listing = slack.command(TEMPLATES, "", user=OPERATOR)
    assert "Run" in listing.reply_text


def test_a_template_whose_playbook_changed_or_disappeared_says_so(slack):
    add(slack)
    with slack.session_factory() as session:
        template = session.query(JobTemplate).one()
        template.playbook_hash = "0" * 64  # the playbook was synced again since
        session.commit()
    result = slack.command(RUN, "deploy-web", user=OPERATOR)
    assert "changed since template `deploy-web` was saved" in result.reply_text
    assert len(slack.jobs()) == 1
    with slack.session_factory() as session:
        session.query(JobTemplate).one().playbook.is_active = False
        session.commit()
    gone = slack.command(RUN, "deploy-web", user=OPERATOR)
    assert "no longer registered" in gone.reply_text
    assert len(slack.jobs()) == 1


def test_the_run_form_offers_the_templates_and_choosing_one_runs_it_where_it_was_opened(slack):
    # given a template and the run form opened in #deploys
    add(slack)
    [view] = slack.command(ids.CMD_RUN_PLAYBOOK, "", user=OPERATOR, channel="C_DEPLOYS").views
    view = {**view, "id": "V_RUN_T", "hash": "h0"}
    assert "deploy-web" in str(view["blocks"][0])
    # when a template is chosen in it (twice: a double click)
    for _ in range(2):
        picked = slack.click(ids.ACTION_MODAL_TEMPLATE_SELECT, "", user=OPERATOR, view=view,
                             action={"type": "static_select",
                                     "selected_option": {"value": "deploy-web"}})
    # then its run starts once, posted where the form was opened, and the form says so
    [job] = slack.jobs()
    assert job.slack_channel_id == "C_DEPLOYS" and job.extra_vars["version"] == "1.2"
    assert "Received: template *deploy-web*" in str(picked.views[-1])
    # and choosing a playbook in the form keeps the picker
    rebuilt = slack.click(ids.ACTION_MODAL_PLAYBOOK_SELECT, "", user=OPERATOR, view=view,
                          action={"type": "static_select", "selected_option": {"value": "ping"}})
    assert "deploy-web" in str(rebuilt.views[-1]["blocks"][0])
