"""`/api/jobs…`: launch, list, show, follow the log, cancel, and a link to the live log page.

A launch calls `core.jobs.launch` exactly as `/run-playbook` does (validation, roles,
four-eyes approvals, change freezes and their `break_glass` reason, deduplication), then
`handlers.launching.announce` posts the run's one Slack message — its approval card when a
production job needs an admin — and enqueues the run. Where it is posted: PLAYBOT_API_CHANNEL, else PLAYBOT_JOBS_CHANNEL, else
the caller's DM with the bot. The `Idempotency-Key` header is the launch's request key
(scoped to the caller): a retried request creates nothing and answers with the same run and
jobs as the first (`Idempotent-Replayed: true`).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, Response, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import jobs as core_jobs
from core import permissions
from core.errors import InvalidInput
from db import queries
from db.job_pages import jobs_page
from db.models import Job, JobStatus, Playbook, Server, User
from handlers.api import params, serialize
from handlers.api.calls import Call, Gate, perform, request_info
from handlers.api.config import ApiConfig
from handlers.api.problems import problem
from handlers.context import Caller
from handlers.launching import announce, enqueue_previews, loaded
from handlers.listeners import Ctx
from handlers.replies import Replier

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
LAUNCH_FIELDS = {"playbook", "playbook_id", "target", "server_id", "extra_vars", "check_mode",
                 "break_glass"}
MAX_LOG_PAGE = 1000


def register(app: Flask, cfg: ApiConfig, gate: Gate) -> None:
    def run(call: Call, work: Any) -> Any:
        return perform(cfg, gate, call, work)

    @app.post("/api/jobs")
    def launch_job() -> Response:
        return _launch(cfg, gate)

    @app.get("/api/jobs")
    def list_jobs() -> Response:
        wanted = params.statuses(request.args.get("status"))
        since = params.since(request.args.get("since"))
        after = params.decode_cursor(request.args.get("cursor"))
        limit = params.integer("limit", 50, low=1, high=200)
        who = (request.args.get("user") or "").strip()
        call = Call("jobs.list", "job", details={
            "status": ",".join(s.value for s in wanted) or "any", "user": who or "any",
            "since": request.args.get("since")})

        def work(session: Session, user: User) -> Any:
            permissions.require(user, permissions.JOB_VIEW)
            user_id = _user_id(session, who, user)
            found = jobs_page(session, statuses=wanted, user_id=user_id, since=since,
                              after=after, limit=limit + 1)
            page = found[:limit]
            cursor = (params.encode_cursor(page[-1].created_at, page[-1].id)
                      if len(found) > limit else None)
            return {"jobs": serialize.jobs(page), "next_cursor": cursor}

        return jsonify(run(call, work))

    @app.get("/api/jobs/<ref>")
    def show_job(ref: str) -> Response:
        call = Call("job.view", "job", ref, link_job=_link_job(ref))

        def work(session: Session, user: User) -> Any:
            permissions.require(user, permissions.JOB_VIEW)
            job = core_jobs.get_job(session, ref)
            call.resource_id = job.job_id
            return serialize.job(job)

        return jsonify(run(call, work))

    @app.get("/api/jobs/<ref>/logs")
    def job_logs(ref: str) -> Response:
        after = params.integer("after", 0, low=0, high=2**31 - 1)
        limit = params.integer("limit", 500, low=1, high=MAX_LOG_PAGE)
        call = Call("log.view", "job", ref, link_job=_link_job(ref), audit_key=f"log:{ref}")

        def work(session: Session, user: User) -> Any:
            permissions.require(user, permissions.LOG_VIEW)
            pk, job_uuid, status = _job_state(session, ref)
            call.resource_id = job_uuid
            lines = queries.log_page(session, pk, after_line=after, limit=limit)
            return {"job_id": job_uuid, "status": status.value, "done": status.is_final,
                    "lines": [serialize.log_line(row) for row in lines],
                    "next_after": int(lines[-1][0]) if lines else after,
                    "more": len(lines) == limit}

        response = jsonify(run(call, work))
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.post("/api/jobs/<ref>/cancel")
    def cancel_job(ref: str) -> Response:
        data = params.body() if request.get_data() else {}
        reason = data.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise InvalidInput("`reason` must be a string.")
        call = Call("job.cancel", "job", ref, audited_by_core=True)

        def work(session: Session, user: User) -> Any:
            job = core_jobs.cancel(session, user, ref, reason=reason, request=request_info())
            call.resource_id = job.job_id
            return serialize.job(job)

        return jsonify(run(call, work))

    @app.post("/api/jobs/<ref>/link")
    def page_link(ref: str) -> Response:
        call = Call("job.link", "job", ref)

        def work(session: Session, user: User) -> Any:
            permissions.require(user, permissions.LOG_VIEW)
            job = core_jobs.get_job(session, ref)
            call.resource_id = job.job_id
            link = cfg.links.sign(job.job_id, user.id)
            url = cfg.links.url(job.job_id, user.id) or f"/jobs/{job.job_id}?link={link}"
            return {"job_id": job.job_id, "url": url,
                    "expires_in": int(cfg.links.ttl.total_seconds())}

        return jsonify(run(call, work))


def _link_job(ref: str) -> str | None:
    """The job uuid a live log link may open here (links are made for full uuids only)."""
    text = ref.strip().lower()
    return text if UUID.match(text) else None


def _job_state(session: Session, ref: str) -> tuple[int, str, JobStatus]:
    """(primary key, uuid, status) of a job: one unique-index read, no joins, for polling."""
    text = ref.strip().lower()
    if UUID.match(text):
        row = session.execute(select(Job.id, Job.job_id, Job.status)
                              .where(Job.job_id == text)).first()
        if row is not None:
            return int(row[0]), str(row[1]), JobStatus(row[2])
    job = core_jobs.get_job(session, ref)  # a prefix or #id; raises UnknownJob
    return job.id, job.job_id, job.status


def _user_id(session: Session, who: str, me: User) -> int | None:
    if not who:
        return None
    if who.lower() in ("me", "mine"):
        return me.id
    from core.users import get_user

    return get_user(session, who.lstrip("@")).id


def _launch(cfg: ApiConfig, gate: Gate) -> Response:
    data = params.body()
    unknown = sorted(set(data) - LAUNCH_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown field{'s' if len(unknown) > 1 else ''} "
                           f"{', '.join(f'`{k[:40]}`' for k in unknown)}; a launch takes "
                           f"{', '.join(sorted(LAUNCH_FIELDS))}.")
    raw_vars = data.get("extra_vars") or {}
    if not isinstance(raw_vars, dict):
        raise InvalidInput("`extra_vars` must be a JSON object of variable names to values.")
    check_mode = data.get("check_mode", False)
    if not isinstance(check_mode, bool):
        raise InvalidInput("`check_mode` must be true or false.")
    break_glass = data.get("break_glass")
    if break_glass is not None and not isinstance(break_glass, str):
        raise InvalidInput("`break_glass` must be a string: why this cannot wait for the end "
                           "of the change freeze.")
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise InvalidInput("`Idempotency-Key` must be 1 to 200 printable ASCII characters "
                           "without spaces (a UUID is a good one).")
    channel = cfg.api_channel or cfg.deps.jobs_channel
    info = request_info()
    call = Call("job.launch", "playbook", str(data.get("playbook") or data.get("playbook_id")),
                audited_by_core=True, details={"target": str(data.get("target") or
                                                             data.get("server_id")),
                                               "check_mode": check_mode, "source": "api"})
    seen: dict[str, Any] = {}

    def work(session: Session, user: User) -> Any:
        playbook = _named(session, data, "playbook", "playbook_id", Playbook, Playbook.name)
        target = _named(session, data, "target", "server_id", Server, Server.hostname)
        seen["user"] = (user.slack_user_id or "", user.username)
        return loaded(core_jobs.launch(
            session, user, playbook=playbook, target=target, raw_vars=raw_vars,
            check_mode=check_mode, request_key=f"api:{user.id}:{key}" if key else None,
            channel_id=channel, policy=cfg.deps.policy, request=info,
            break_glass=break_glass or None))

    try:
        result = perform(cfg, gate, call, work)
    except IntegrityError:  # a concurrent request with the same key committed first
        result = perform(cfg, gate, call, work)
    if result.duplicate and result.already_running:
        return problem(409, "You already have this in progress; it was not started again.",
                       code="AlreadyRunning", jobs=serialize.jobs(result.jobs))
    headers = {}
    if result.duplicate:
        headers["Idempotent-Replayed"] = "true"
    else:
        slack_id, username = seen["user"]
        caller = Caller(slack_user_id=slack_id, display_name=username, team_id=None,
                        channel_id=channel, trigger_id=None, response_url=None, request=info)
        ctx = Ctx(deps=cfg.deps, caller=caller, client=cfg.client, body={},
                  reply=Replier(cfg.client, caller, None, jobs_channel=cfg.deps.jobs_channel))
        announce(ctx, result.jobs, channel, {t.job_id: t for t in result.approval_tickets})
        enqueue_previews(ctx, result)
    return _launched(result, headers)


def _launched(result: Any, headers: dict[str, str]) -> Response:
    waiting = [j for j in result.jobs if j.status == JobStatus.awaiting_approval]
    if waiting:
        state = "awaiting_approval"
        message = (f"{len(waiting)} production job{'s' if len(waiting) != 1 else ''} "
                   f"{'needs' if len(waiting) == 1 else 'need'} the approval of an admin other "
                   "than you; the request is posted in Slack with Approve/Reject buttons. "
                   "Check runs need approval too, unless the playbook is declared check-safe.")
    else:
        state = "accepted"
        message = f"Run {result.run_id[:8]} accepted: {len(result.jobs)} job(s)."
    body = {"run_id": result.run_id, "status": state, "message": message,
            "duplicate": bool(result.duplicate),
            "jobs": serialize.jobs(result.jobs),
            "already_running": serialize.jobs(result.already_running),
            "approval_tickets": [t.ticket_id for t in result.approval_tickets]}
    response = jsonify(body)
    response.status_code = 202
    for name, value in headers.items():
        response.headers[name] = value
    return response


def _named(session: Session, data: dict[str, Any], name_field: str, id_field: str,
           model: Any, column: Any) -> str:
    """The playbook name / target text of a launch body: given as text, or by the seed's
    numeric id."""
    value = data.get(name_field)
    if value is not None:
        if not isinstance(value, str):
            raise InvalidInput(f"`{name_field}` must be a string.")
        return value
    pk = data.get(id_field)
    if pk is None:
        raise InvalidInput(f"`{name_field}` is required (or the seed's `{id_field}`).")
    if not isinstance(pk, int) or isinstance(pk, bool):
        raise InvalidInput(f"`{id_field}` must be a number.")
    found = session.scalar(select(column).where(model.id == pk))
    if found is None:
        from core.errors import NotFound

        raise NotFound(f"No {name_field} with id {pk}.")
    return str(found)
