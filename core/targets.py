"""What a run targets: a hostname, `tag:<tag>`, `env:<environment>` or `group:<name>` (a
server group with its children, `core.server_groups`), resolved to servers.

Only active servers are ever targeted. Unknown names answer with the closest matches (or the
known tags, environments and groups); a target that expands to more servers than the configured limit
is refused rather than silently cut.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import InvalidInput, UnknownServer
from core.server_groups import servers_in_group
from core.suggestions import closest
from db.models import Environment, Server

TARGET_HELP = "a hostname, `tag:<tag>`, `env:<environment>` or `group:<group>`"


def resolve_target(session: Session, target: str, *, limit: int) -> list[Server]:
    """The active servers `target` names, sorted by hostname.

    Raises InvalidInput for an empty or malformed target, an unknown environment or more
    than `limit` servers; UnknownServer (with suggestions) for an unknown or deactivated
    hostname, an unknown group, or a tag/environment/group with no active server.
    """
    text = (target or "").strip()
    if not text:
        raise InvalidInput(f"Give a target: {TARGET_HELP}.")
    kind, sep, value = text.partition(":")
    if sep and kind.lower() == "tag":
        servers = _by_tag(session, value.strip())
    elif sep and kind.lower() in ("env", "environment"):
        servers = _by_environment(session, value.strip())
    elif sep and kind.lower() == "group":
        if not value.strip():
            raise InvalidInput("`group:` needs a group name, e.g. `group:webservers`.")
        servers = servers_in_group(session, value.strip())
    else:
        servers = [_by_hostname(session, text)]
    if len(servers) > limit:
        raise InvalidInput(
            f"`{text}` matches {len(servers)} servers; one run may target at most {limit} "
            "(PLAYBOT_MAX_TARGETS). Narrow the target, e.g. with a more specific tag."
        )
    return servers


def _active(session: Session) -> list[Server]:
    return list(session.scalars(
        select(Server).where(Server.is_active.is_(True)).order_by(Server.hostname)))


def _by_hostname(session: Session, hostname: str) -> Server:
    server = session.scalar(
        select(Server).where(func.lower(Server.hostname) == hostname.lower()))
    if server is not None and server.is_active:
        return server
    if server is not None:
        raise UnknownServer(f"Server `{server.hostname}` is deactivated; ask an admin to "
                            "reactivate it.")
    names = [s.hostname for s in _active(session)]
    raise UnknownServer(f"No server named `{hostname}`. A target is {TARGET_HELP}.",
                        suggestions=closest(hostname, names))


def _by_tag(session: Session, tag: str) -> list[Server]:
    if not tag:
        raise InvalidInput("`tag:` needs a tag name, e.g. `tag:web`.")
    active = _active(session)
    wanted = tag.lower()
    found = [s for s in active if any(str(t).lower() == wanted for t in (s.tags or []))]
    if found:
        return found
    known = sorted({str(t) for s in active for t in (s.tags or [])}, key=str.lower)
    listing = ", ".join(f"`{t}`" for t in known) if known else "none"
    raise UnknownServer(f"No active server has the tag `{tag}`. Known tags: {listing}.",
                        suggestions=[f"tag:{t}" for t in closest(tag, known)])


def _by_environment(session: Session, name: str) -> list[Server]:
    names = [e.value for e in Environment]
    environment = next((e for e in Environment if e.value == name.lower()), None)
    if environment is None:
        guesses = closest(name, names) or [n for n in names if n.startswith(name.lower()[:3])]
        raise InvalidInput(
            f"Unknown environment `{name}`; environments are {', '.join(names)}.",
            suggestions=[f"env:{g}" for g in guesses] if name else [],
        )
    found = [s for s in _active(session) if s.environment == environment]
    if not found:
        raise UnknownServer(f"No active server is in {environment.value}.")
    return found
