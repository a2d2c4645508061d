"""One API call, done right: the caller authenticated, the work in one transaction, one audit
row — for what was allowed and, in a fresh transaction after the rollback, for what was
denied or refused (as `handlers.chat.perform` does for a chat action).

    result = perform(cfg, Call("jobs.list", "job"), lambda session, user: ...)

Credentials are read from the request: `Authorization: Bearer pbt_…` (a token), or a live log
link (`X-Playbot-Link` header or `link` query parameter) that only the page's own endpoints
accept, for the one job it names. The rate limit is checked before the database is touched.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import g, request
from sqlalchemy.orm import Session

from core import api_tokens, audit
from core.audit import RequestInfo
from core.errors import InactiveUser, PlaybotError
from core.log_links import BadLink
from db.models import User
from db.session import transaction
from handlers.api.config import ApiConfig
from handlers.api.problems import RateLimited, Unauthorized
from handlers.api.ratelimit import RateLimit

T = TypeVar("T")
LOG_READ_AUDIT_EVERY = 600.0  # seconds: one audit row per token and job log polled
AUTH_FAILURES_PER_ADDRESS = "30/minute"


@dataclass
class Call:
    """What the audit row says (as `handlers.chat.Action`): `name`, the resource, details.
    `audited_by_core`: the core function writes its own row when it succeeds.
    `link_job`: the job uuid a live log link may be used for (None: tokens only)."""

    name: str
    resource_type: str
    resource_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    audited_by_core: bool = False
    link_job: str | None = None
    audit_key: str | None = None  # set: audited at most once per LOG_READ_AUDIT_EVERY


@dataclass(frozen=True)
class Credentials:
    kind: str  # "token", "link" or "none"
    value: str = ""

    @property
    def limit_key(self) -> str:
        if self.kind == "none":
            return "addr:" + client_address()
        return f"{self.kind}:" + hashlib.sha256(self.value.encode()).hexdigest()[:24]


class Gate:
    """The rate limits and the log-read audit throttle of one API app."""

    def __init__(self, cfg: ApiConfig) -> None:
        self.per_caller = RateLimit(cfg.rate_limit, cfg.redis_url)
        self.failures = RateLimit(AUTH_FAILURES_PER_ADDRESS, cfg.redis_url)
        self._audited: dict[str, float] = {}
        self._lock = threading.Lock()

    def should_audit(self, key: str | None) -> bool:
        if key is None:
            return True
        now = time.monotonic()
        with self._lock:
            if len(self._audited) > 10_000:
                self._audited = {k: t for k, t in self._audited.items()
                                 if now - t < LOG_READ_AUDIT_EVERY}
            last = self._audited.get(key)
            if last is not None and now - last < LOG_READ_AUDIT_EVERY:
                return False
            self._audited[key] = now
            return True


def client_address() -> str:
    return str(request.remote_addr or "")


def request_info() -> RequestInfo:
    """The audit's ip/user agent/request id of this HTTP request."""
    if "request_id" not in g:
        g.request_id = uuid.uuid4().hex
    agent = request.headers.get("User-Agent")
    return RequestInfo(ip_address=client_address() or None,
                       user_agent=agent[:255] if agent else None, request_id=g.request_id)


def credentials() -> Credentials:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("Send the token as `Authorization: Bearer pbt_…`.")
        return Credentials("token", value.strip())
    link = request.headers.get("X-Playbot-Link") or request.args.get("link")
    if link:
        return Credentials("link", link.strip())
    return Credentials("none")


def perform(cfg: ApiConfig, gate: Gate, call: Call,
            work: Callable[[Session, User], T]) -> T:
    """Run `work(session, user)` as the caller in one transaction and audit it.

    Raises the core's PlaybotError (after auditing the refusal in a fresh transaction), or
    Unauthorized / UnknownToken / BadLink / RateLimited before any work.
    """
    info = request_info()
    user_id: int | None = None
    details = {**call.details, "via": "api"}
    try:
        creds = credentials()
        if creds.kind == "none":
            raise Unauthorized("This needs an API token: send `Authorization: Bearer pbt_…` "
                               "(make one with `playbot tokens add USER`).")
        gate.per_caller.check(creds.limit_key)
        with transaction(cfg.deps.session_factory) as session:
            user, token = _authenticate(cfg, session, creds, call)
            user_id = user.id
            details["using"] = f"api token {token.name}" if token else "live log link"
            result = work(session, user)
            if not call.audited_by_core and gate.should_audit(
                    f"{creds.limit_key}:{call.audit_key}" if call.audit_key else None):
                audit.record(session, user=user, action=call.name,
                             resource_type=call.resource_type, resource_id=call.resource_id,
                             details=details, request=info)
            if token is not None:
                api_tokens.touch(session, token)
            return result
    except RateLimited:
        raise  # not audited: a row per refused request would undo what the limit is for
    except PlaybotError as exc:
        if isinstance(exc, Unauthorized | api_tokens.UnknownToken | BadLink):
            gate.failures.check("addr:" + client_address())  # guessing is limited too
        with transaction(cfg.deps.session_factory) as session:
            audit.denied(session, user_id, call.name, call.resource_type, call.resource_id,
                         exc, info, details={**details, "reason": type(exc).__name__})
        raise


def _authenticate(cfg: ApiConfig, session: Session, creds: Credentials, call: Call
                  ) -> tuple[User, api_tokens.ApiToken | None]:
    if creds.kind == "token":
        token, user = api_tokens.authenticate(session, creds.value)
        return user, token
    if call.link_job is None:
        raise Unauthorized("A live log link only opens its job's page and log; use an API "
                           "token for the rest of the API.")
    user_id = cfg.links.verify(creds.value, call.link_job)
    user = session.get(User, user_id)
    if user is None:
        raise BadLink("This live log link is not valid.")
    if not user.is_active:
        from core.permissions import inactive_message

        raise InactiveUser(inactive_message(user))
    return user, None
