"""Targets: a hostname, `tag:<tag>`, `env:<environment>` or `group:<name>`, resolved to active
servers."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput, UnknownServer
from core.targets import resolve_target


def hostnames(servers) -> list[str]:
    return [s.hostname for s in servers]


def test_a_hostname_targets_that_server(world):
    assert hostnames(resolve_target(world.session, "web-01", limit=10)) == ["web-01"]


def test_a_hostname_is_matched_whatever_its_case(world):
    assert hostnames(resolve_target(world.session, "WEB-01", limit=10)) == ["web-01"]


def test_a_mistyped_hostname_suggests_the_closest_active_servers(world):
    with pytest.raises(UnknownServer) as caught:
        resolve_target(world.session, "web-1", limit=10)
    assert "No server named `web-1`" in str(caught.value)
    assert caught.value.suggestions[:2] == ["web-01", "web-02"]


def test_a_deactivated_server_is_not_a_target(world):
    with pytest.raises(UnknownServer, match="`old-01` is deactivated"):
        resolve_target(world.session, "old-01", limit=10)


def test_a_tag_targets_every_active_server_carrying_it(world):
    assert hostnames(resolve_target(world.session, "tag:web", limit=10)) == [
        "prod-01", "web-01", "web-02"]


def test_a_tag_only_deactivated_servers_carry_is_unknown(world):
    with pytest.raises(UnknownServer) as caught:
        resolve_target(world.session, "tag:legacy", limit=10)
    assert "Known tags: `db`, `eu`, `web`" in str(caught.value)


def test_an_unknown_tag_lists_the_known_ones_and_the_closest(world):
    with pytest.raises(UnknownServer) as caught:
        resolve_target(world.session, "tag:wbe", limit=10)
    assert caught.value.suggestions == ["tag:web"]


def test_an_environment_targets_its_active_servers(world):
    assert hostnames(resolve_target(world.session, "env:production", limit=10)) == [
        "prod-01", "prod-02"]


def test_an_unknown_environment_names_the_valid_ones(world):
    with pytest.raises(InvalidInput) as caught:
        resolve_target(world.session, "env:prod", limit=10)
    assert "production, staging, development" in str(caught.value)
    assert caught.value.suggestions == ["env:production"]


def test_an_environment_without_active_servers_says_so(world):
    world.servers["web-01"].is_active = False
    world.session.commit()
    with pytest.raises(UnknownServer, match="No active server is in development"):
        resolve_target(world.session, "env:development", limit=10)


def test_a_target_wider_than_the_limit_is_refused_not_cut(world):
    with pytest.raises(InvalidInput, match="matches 3 servers; one run may target at most 2"):
        resolve_target(world.session, "tag:web", limit=2)


@pytest.mark.parametrize("target", ["", "   ", "tag:"])
def test_an_empty_target_asks_for_one(world, target):
    with pytest.raises(InvalidInput):
        resolve_target(world.session, target, limit=10)


def _groups(world):
    """Group "webservers" holds web-01 and the child group "eu-web" (web-02, old-01)."""
    from db.models import ServerGroup

    child = ServerGroup(name="eu-web", variables={})
    child.servers = [world.servers["web-02"], world.servers["old-01"]]
    parent = ServerGroup(name="webservers", variables={"http_port": 80})
    parent.servers = [world.servers["web-01"]]
    parent.children = [child]
    world.session.add_all([parent, child])
    world.session.commit()


def test_a_group_targets_its_active_servers_and_those_of_its_children(world):
    _groups(world)
    assert hostnames(resolve_target(world.session, "group:webservers", limit=10)) == [
        "web-01", "web-02"]


def test_a_mistyped_group_suggests_the_closest_groups(world):
    _groups(world)
    with pytest.raises(UnknownServer) as caught:
        resolve_target(world.session, "group:webserver", limit=10)
    assert "group:webservers" in caught.value.suggestions


def test_a_group_wider_than_the_limit_is_refused(world):
    _groups(world)
    with pytest.raises(InvalidInput, match="at most 1"):
        resolve_target(world.session, "group:webservers", limit=1)
