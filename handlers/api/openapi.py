"""The OpenAPI 3.1 description of `/api/` (served at `/api/openapi.json`).

Written out by hand, next to the code it describes; tests/api/test_openapi.py checks that it
names exactly the routes the app serves, with their methods, and that it is a valid
OpenAPI document (the response shapes are checked by the endpoint tests).
"""

from __future__ import annotations

from typing import Any

VERSION = "1.0.0"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(schema: dict[str, Any], description: str = "OK", status: str = "200"
        ) -> dict[str, Any]:
    return {status: {"description": description,
                     "content": {"application/json": {"schema": schema}}},
            **ERRORS}


def _query(name: str, description: str, schema: dict[str, Any] | None = None,
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema or {"type": "string"}}


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}


PROBLEM = {"content": {"application/problem+json": {"schema": _ref("Problem")}}}
ERRORS = {
    "401": {"description": "No usable token (unknown, revoked, expired) or link", **PROBLEM},
    "403": {"description": "The role does not allow it, or the user is deactivated", **PROBLEM},
    "404": {"description": "No such job, ticket, playbook, server or user", **PROBLEM},
    "422": {"description": "Bad input (the same words as chat)", **PROBLEM},
    "429": {"description": "Rate limit of the token reached (see Retry-After)", **PROBLEM},
}
JOB_REF = _path("ref", "Job id: its uuid, a unique prefix of 6+ characters, or #N")
TICKET_REF = _path("ref", "Ticket id: its uuid, a unique prefix of 6+ characters, or #N")

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object", "required": ["type", "title", "status", "detail"],
        "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                       "status": {"type": "integer"},
                       "detail": {"type": "string", "description": "What chat would say"},
                       "code": {"type": "string", "description": "The error's kind"},
                       "suggestions": {"type": "array", "items": {"type": "string"}}}},
    "Job": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"}, "run_id": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "awaiting_approval", "running",
                                                  "success", "failed", "cancelled",
                                                  "archived"]},
            "done": {"type": "boolean"}, "check_mode": {"type": "boolean"},
            "extra_vars": {"type": "object"}, "error_message": {"type": ["string", "null"]},
            "cancel_requested": {"type": "boolean"},
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "completed_at": {"type": ["string", "null"], "format": "date-time"},
            "recap": {"type": ["object", "null"]},
            "playbook": {"type": "object"}, "server": {"type": "object"},
            "user": {"type": "object"}}},
    "Launch": {
        "type": "object",
        "properties": {
            "playbook": {"type": "string"},
            "playbook_id": {"type": "integer", "description": "The seed's field, instead of playbook"},
            "target": {"type": "string",
                       "description": "A hostname, tag:T, env:E or group:G"},
            "server_id": {"type": "integer", "description": "The seed's field, instead of target"},
            "extra_vars": {"type": "object"}, "check_mode": {"type": "boolean"},
            "break_glass": {"type": "string",
                            "description": "During a change freeze: why it cannot wait (two "
                                           "admins must then approve)"}}},
    "Launched": {
        "type": "object",
        "properties": {
            "run_id": {"type": "string"},
            "status": {"type": "string", "enum": ["accepted", "awaiting_approval"]},
            "message": {"type": "string"}, "duplicate": {"type": "boolean"},
            "jobs": {"type": "array", "items": _ref("Job")},
            "already_running": {"type": "array", "items": _ref("Job")},
            "approval_tickets": {"type": "array", "items": {"type": "string"}}}},
    "LogPage": {
        "type": "object",
        "properties": {
            "job_id": {"type": "string"}, "status": {"type": "string"},
            "done": {"type": "boolean", "description": "false while the job may still log"},
            "lines": {"type": "array", "items": {
                "type": "object", "properties": {"n": {"type": "integer"},
                                                 "level": {"type": "string"},
                                                 "text": {"type": "string"}}}},
            "next_after": {"type": "integer", "description": "Pass as `after` next time"},
            "more": {"type": "boolean", "description": "More lines are already there"}}},
    "Ticket": {"type": "object"},
    "Server": {"type": "object"},
    "Playbook": {"type": "object"},
    "AuditEntry": {"type": "object"},
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Playbot API", "version": VERSION,
             "description": "Run Ansible playbooks, follow their logs, handle tickets: what "
                            "Playbot's Slack commands do, for scripts and CI. Authenticate "
                            "with `Authorization: Bearer pbt_…` (`playbot tokens add USER`)."},
    "servers": [{"url": "/"}],
    "security": [{"token": []}],
    "components": {"schemas": SCHEMAS, "securitySchemes": {
        "token": {"type": "http", "scheme": "bearer",
                  "description": "A personal API token: pbt_…"},
        "link": {"type": "apiKey", "in": "header", "name": "X-Playbot-Link",
                 "description": "A live log link (one job's page and log only)"}}},
    "paths": {
        "/api/openapi.json": {"get": {
            "summary": "This description", "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1",
                                  "content": {"application/json": {"schema": {}}}}}}},
        "/api/me": {"get": {"summary": "Who the token acts as",
                            "responses": _ok({"type": "object"})}},
        "/api/jobs": {
            "post": {
                "summary": "Launch a playbook on a target (as /run-playbook)",
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "description": "A retried request with the same key "
                                               "returns the first answer",
                                "schema": {"type": "string", "maxLength": 200}}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("Launch")}}},
                "responses": {**_ok(_ref("Launched"), "Launched (or awaiting approval)",
                                    "202"),
                              "409": {"description": "Already in progress, or the playbook "
                                                     "changed on disk", **PROBLEM}}},
            "get": {
                "summary": "Jobs, newest first (ERD patterns 1 and 3)",
                "parameters": [
                    _query("status", "One or more statuses, comma-separated"),
                    _query("user", "A username, or `me`"),
                    _query("since", "An ISO 8601 time or a span: 30m, 24h, 7d, 2w"),
                    _query("limit", "1-200 (50)", {"type": "integer"}),
                    _query("cursor", "`next_cursor` of the previous page")],
                "responses": _ok({"type": "object", "properties": {
                    "jobs": {"type": "array", "items": _ref("Job")},
                    "next_cursor": {"type": ["string", "null"]}}})}},
        "/api/jobs/{ref}": {"get": {
            "summary": "One job with its playbook, server and user (pattern 2)",
            "security": [{"token": []}, {"link": []}], "parameters": [JOB_REF],
            "responses": _ok(_ref("Job"))}},
        "/api/jobs/{ref}/logs": {"get": {
            "summary": "The job's log lines after line N, and whether it is done",
            "security": [{"token": []}, {"link": []}],
            "parameters": [JOB_REF, _query("after", "Line number already seen (0)",
                                           {"type": "integer"}),
                           _query("limit", "1-1000 (500)", {"type": "integer"})],
            "responses": _ok(_ref("LogPage"))}},
        "/api/jobs/{ref}/cancel": {"post": {
            "summary": "Cancel a job (a running one stops its whole run)",
            "parameters": [JOB_REF],
            "requestBody": {"required": False, "content": {"application/json": {
                "schema": {"type": "object", "properties": {"reason": {"type": "string"}}}}}},
            "responses": {**_ok(_ref("Job")),
                          "409": {"description": "Already finished or stopping", **PROBLEM}}}},
        "/api/jobs/{ref}/link": {"post": {
            "summary": "A signed, expiring link to the job's live log page",
            "parameters": [JOB_REF],
            "responses": _ok({"type": "object", "properties": {
                "url": {"type": "string"}, "expires_in": {"type": "integer"}}})}},
        "/api/stats": {"get": {
            "summary": "Job counts by status over the last N days (pattern 5)",
            "parameters": [_query("days", "1-366 (7)", {"type": "integer"})],
            "responses": _ok({"type": "object"})}},
        "/api/audit": {"get": {
            "summary": "The audit trail of one resource, newest first (pattern 4, admins)",
            "parameters": [_query("resource_type", "job, ticket, server, user, …",
                                  required=True),
                           _query("resource_id", "The resource's id", required=True),
                           _query("limit", "1-500 (50)", {"type": "integer"})],
            "responses": _ok({"type": "object", "properties": {
                "entries": {"type": "array", "items": _ref("AuditEntry")}}})}},
        "/api/tickets": {"get": {
            "summary": "Tickets: the open queue by priority, or those of a status",
            "parameters": [_query("status", "open, in_progress, resolved, closed"),
                           _query("kind", "incident or approval"),
                           _query("limit", "1-200 (50)", {"type": "integer"})],
            "responses": _ok({"type": "object", "properties": {
                "tickets": {"type": "array", "items": _ref("Ticket")}}})}},
        "/api/tickets/{ref}": {"get": {"summary": "One ticket", "parameters": [TICKET_REF],
                                       "responses": _ok(_ref("Ticket"))}},
        "/api/tickets/{ref}/resolve": {"post": {
            "summary": "Resolve an incident with a note", "parameters": [TICKET_REF],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"type": "object", "required": ["note"],
                           "properties": {"note": {"type": "string"}}}}}},
            "responses": {**_ok(_ref("Ticket")),
                          "409": {"description": "Not open or in progress", **PROBLEM}}}},
        "/api/servers": {"get": {
            "summary": "Active servers",
            "parameters": [_query("environment", "production, staging or development"),
                           _query("tag", "Only servers with this tag")],
            "responses": _ok({"type": "object", "properties": {
                "servers": {"type": "array", "items": _ref("Server")}}})}},
        "/api/playbooks": {"get": {
            "summary": "Registered playbooks and their declared variables",
            "parameters": [_query("tag", "Only playbooks with this tag")],
            "responses": _ok({"type": "object", "properties": {
                "playbooks": {"type": "array", "items": _ref("Playbook")}}})}},
    },
}
