"""`playbot templates add|list|show|remove`: the same rules as chat, audited as the CLI."""

from __future__ import annotations

from db.models import JobTemplate


def setup(playbot):
    assert playbot("playbooks", "sync").exit_code == 0
    assert playbot("servers", "add", "web-01", "--local").exit_code == 0
    assert playbot("users", "add", "alice", "--slack-id", "U_ALICE",
                   "--role", "operator").exit_code == 0


def test_add_list_show_and_remove_a_template(playbot):
    # given
    setup(playbot)
    # when
    added = playbot("templates", "add", "deploy-web", "--playbook", "deploy", "--target",
                    "web-01", "--owner", "alice", "--var", "version=1.2", "--var",
                    "replicas=3", "--override", "version", "--description", "web tier")
    listed = playbot("templates", "list")
    shown = playbot("templates", "show", "deploy-web")
    # then
    assert added.exit_code == 0, added.stderr
    assert "Saved template deploy-web: deploy on web-01, owner alice." in added.stdout
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["NAME", "deploy-web"]
    assert "variables: {'version': '1.2', 'replicas': 3}" in shown.stdout
    assert "overridable: ['version']" in shown.stdout
    [row] = playbot.audits("template.add")
    assert row.user_id is None and row.details["via"] == "cli"
    # when removed
    removed = playbot("templates", "remove", "deploy-web")
    assert removed.exit_code == 0 and playbot.count(JobTemplate) == 0
    assert playbot.audits("template.remove")


def test_bad_variables_an_unknown_owner_or_template_exit_2_and_write_nothing(playbot):
    setup(playbot)
    bad = playbot("templates", "add", "t", "--playbook", "deploy", "--target", "web-01",
                  "--owner", "alice", "--var", "replicas=99", "--var", "version=1")
    nobody = playbot("templates", "add", "t", "--playbook", "ping", "--target", "web-01",
                     "--owner", "zed")
    missing = playbot("templates", "show", "nope")
    assert bad.exit_code == 2 and "replicas" in bad.stderr
    assert nobody.exit_code == 2 and "zed" in nobody.stderr
    assert missing.exit_code == 2 and "no template named `nope`" in missing.stderr
    assert playbot.count(JobTemplate) == 0
