"""The HTTP API (`/api/…`) and the live log page (`/jobs/{id}`): a Flask WSGI app that
`bot.web` mounts beside `/slack/events`, `/healthz` and `/metrics` in `playbot web`.

The API does what chat does, through the same core functions, with the same words:

- who: a personal token (`Authorization: Bearer pbt_…`, `core.api_tokens`) acting as its
  user with the user's role, or, for one job's page and log only, a signed live log link
  (`core.log_links`). A deactivated user's tokens and links stop at once.
- what: launch (`core.jobs.launch`: validation, roles, four-eyes approvals, freezes,
  deduplication; `Idempotency-Key` is its request key), job lists (ERD patterns 1 and 3),
  one job (pattern 2), its log after line N (the seed's polling), cancel, statistics
  (pattern 5), the audit trail (pattern 4, admins), tickets, servers and playbooks.
- audit: every call is one transaction with one audit row (allowed or denied, with the
  caller's IP, user agent and a request id), as a chat action is — except that a token's
  repeated polling of one job's log is audited once per `LOG_READ_AUDIT_EVERY` per process.
- errors: RFC 9457 problem details (`application/problem+json`) whose `detail` is the
  core's own message; 401 / 403 / 404 / 409 / 422 / 429 as HTTP means them.
- limits: a rate limit per token (or link, or client address without either), with the
  `limits` library: Redis storage when REDIS_URL is set (shared by every web process),
  memory otherwise.

`create_api(config)` builds the app; `openapi.SPEC` is its OpenAPI 3.1 description, served at
`/api/openapi.json` and checked against the routes by a test.
"""

from __future__ import annotations

from handlers.api.app import create_api
from handlers.api.config import ApiConfig

__all__ = ["ApiConfig", "create_api"]
