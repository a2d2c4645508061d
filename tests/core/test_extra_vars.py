"""What users type as extra vars: parsed, typed, checked, and never a way into Ansible's internals."""

from __future__ import annotations

import shlex

import pytest

from core.errors import InvalidVars
from core.extra_vars import ANSIBLE_RESERVED_NAMES, MAX_VALUE_BYTES, parse_assignments, validate
from db.models import Playbook
from tests.core.conftest import DEPLOY_VARIABLES


def deploy() -> Playbook:
    return Playbook(name="deploy", variables=DEPLOY_VARIABLES, allow_free_vars=False)


def free() -> Playbook:
    return Playbook(name="free", variables={"level": {"type": "integer", "default": 1}},
                    allow_free_vars=True)


def typed(text: str, playbook: Playbook | None = None) -> dict:
    return validate(playbook or deploy(), parse_assignments(shlex.split(text)))


# parse_assignments ----------------------------------------------------------------------


def test_assignments_keep_equals_signs_and_spaces_inside_values():
    tokens = shlex.split("version=1.2 note='a = b=c' empty=")
    assert parse_assignments(tokens) == {"version": "1.2", "note": "a = b=c", "empty": ""}


def test_a_token_without_equals_sign_is_refused():
    with pytest.raises(InvalidVars, match="`oops` is not `key=value`"):
        parse_assignments(["version=1", "oops"])


@pytest.mark.parametrize("token", ["1abc=x", "a-b=x", "=x", "a.b=x", "ä=x"])
def test_malformed_keys_are_refused(token):
    with pytest.raises(InvalidVars, match="not a valid variable name"):
        parse_assignments([token])


def test_a_key_given_twice_is_refused():
    with pytest.raises(InvalidVars, match="`version` is given more than once"):
        parse_assignments(["version=1", "version=2"])


def test_every_problem_is_listed_at_once():
    with pytest.raises(InvalidVars) as caught:
        parse_assignments(["oops", "1x=y", "a=1", "a=2"])
    assert str(caught.value).count("•") == 3


# validate: types and declarations ------------------------------------------------------


def test_values_are_coerced_to_their_declared_types_and_defaults_filled_in():
    assert typed("version=1.4.2 replicas=5 dry_run=yes ratio=0.5 regions=eu,us") == {
        "version": "1.4.2", "replicas": 5, "dry_run": True, "ratio": 0.5,
        "regions": ["eu", "us"], "env_name": "blue"}


@pytest.mark.parametrize("text, message", [
    ("version=1 replicas=many", "`replicas` must be a whole number, not `many`"),
    ("version=1 replicas=0", "`replicas` must be at least 1"),
    ("version=1 replicas=21", "`replicas` must be at most 20"),
    ("version=1 dry_run=perhaps", "`dry_run` must be true or false"),
    ("version=1 ratio=nan", "`ratio` must be a number"),
    ("version=1 ratio=1.5", "`ratio` must be at most 1"),
    ("version=v1", "does not match the pattern"),
    ("version=1 env_name=gren", "must be one of `blue`, `green`, not `gren` (did you mean `green`?)"),
])
def test_values_of_the_wrong_type_or_range_are_refused(text, message):
    with pytest.raises(InvalidVars) as caught:
        typed(text)
    assert message in str(caught.value)


def test_a_missing_required_variable_is_named_with_what_it_expects():
    with pytest.raises(InvalidVars, match=r"`version` is required \(string: Release to deploy\)"):
        typed("replicas=3")


def test_an_empty_optional_value_means_the_default():
    assert typed("version=1 replicas=")["replicas"] == 2


def test_an_unknown_key_lists_the_declared_ones_and_the_closest_match():
    with pytest.raises(InvalidVars) as caught:
        typed("verison=1.2")
    message = str(caught.value)
    assert "`verison` is not a variable of `deploy` (did you mean `version`?)" in message
    assert "declares: `dry_run`, `env_name`, `note`, `ratio`, `regions`, `replicas`, " \
           "`version`" in message
    assert "db_password" not in message


def test_a_playbook_with_free_vars_accepts_undeclared_keys_as_text():
    assert typed("color=red level=3", free()) == {"color": "red", "level": 3}


def test_native_values_from_a_modal_or_a_retried_job_are_accepted():
    assert validate(deploy(), {"version": "2", "replicas": 3, "dry_run": False,
                               "regions": ["eu"]}) == {
        "version": "2", "replicas": 3, "dry_run": False, "regions": ["eu"], "env_name": "blue"}


# validate: safety ----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["ansible_connection", "ansible_host", "ANSIBLE_BECOME",
                                 "ansible_ssh_common_args", "hostvars", "groups",
                                 "inventory_hostname", "playbook_dir", "role_path", "omit",
                                 "environment", "vars", "become", "become_user", "delegate_to",
                                 "lookup", "item", "_ansible_no_log"])
def test_ansible_magic_and_connection_variables_are_refused_even_with_free_vars(key):
    with pytest.raises(InvalidVars, match=f"`{key}` is refused"):
        validate(free(), {key: "local"})


def test_ansible_connection_local_is_refused():
    with pytest.raises(InvalidVars) as caught:
        typed("version=1 ansible_connection=local")
    assert "Ansible connection and magic variables cannot be set from chat" in str(caught.value)


def test_the_vendored_reserved_names_cover_the_installed_ansible():
    from ansible.vars.reserved import get_reserved_names

    assert get_reserved_names() <= ANSIBLE_RESERVED_NAMES


def test_jinja_in_a_value_is_kept_as_a_literal_string():
    value = "{{ lookup('pipe','id') }}"
    assert typed(f"version=1 note=\"{value}\"")["note"] == value
    assert typed("x='{% raw %}{# c #}'", free())["x"] == "{% raw %}{# c #}"


@pytest.mark.parametrize("key", ["password", "db_pass", "api_key", "aws_secret", "auth_token",
                                 "private_key"])
def test_secret_looking_keys_are_refused_with_advice(key):
    with pytest.raises(InvalidVars) as caught:
        validate(free(), {key: "hunter2"})
    message = str(caught.value)
    assert "looks like a secret" in message and "Ansible Vault" in message
    assert f"PLAYBOT_VAR_{key.upper()}" in message
    assert "hunter2" not in message


def test_a_declared_secret_variable_cannot_be_given_in_chat():
    with pytest.raises(InvalidVars, match="`db_password` is a secret variable.*PLAYBOT_VAR_DB_PASSWORD"):
        typed("version=1 db_password=s3cret")


def test_a_value_that_is_plainly_a_token_is_refused():
    with pytest.raises(InvalidVars, match="looks like it holds a secret") as caught:
        typed("version=1 note=xoxb-123456789012-abcdefghijklmnop")
    assert "xoxb-" not in str(caught.value)


def test_values_and_counts_are_bounded():
    with pytest.raises(InvalidVars, match="too long"):
        validate(free(), {"blob": "x" * (MAX_VALUE_BYTES + 1)})
    with pytest.raises(InvalidVars, match="Too many variables"):
        validate(free(), {f"v{i}": "1" for i in range(60)})
