"""`GET /jobs/{id}`: a small HTML page that follows a job's log as it runs.

Access: a signed, expiring live log link made for one user and this job (`?link=…`: the
Slack job message's Live log button hands one to whoever clicks it; `POST
/api/jobs/{id}/link` makes one for a token's user), or an API token. Without either,
nothing of the job is shown (401). The page itself holds no data: its script polls
`/api/jobs/{id}/logs?after=N` every second (the seed's polling) and, when the status
changes, `/api/jobs/{id}` for status, host, timings and recap — every request authorised
again with the link, so an expired link or a deactivated user stops the page.

The page is served with a strict Content-Security-Policy (its own inline script by hash
only), `Referrer-Policy: no-referrer` (the link never leaks to another site) and no caching.
"""

from __future__ import annotations

import base64
import hashlib
import html
from typing import Any

from flask import Flask, Response
from sqlalchemy.orm import Session

from core import jobs as core_jobs
from core import permissions
from core.errors import PlaybotError
from db.models import User
from handlers.api.calls import Call, Gate, credentials, perform
from handlers.api.config import ApiConfig
from handlers.api.jobs_routes import _link_job
from handlers.api.problems import status_of

SCRIPT = r"""
(function () {
  var root = document.getElementById("job");
  var jobId = root.dataset.job, link = root.dataset.link;
  var after = 0, status = null, timer = null, stopped = false;
  var logEl = document.getElementById("log");
  function get(path) {
    return fetch(path, {headers: {"X-Playbot-Link": link}, cache: "no-store"})
      .then(function (r) {
        return r.json().then(function (b) { if (!r.ok) { throw new Error(b.detail || r.status); } return b; });
      });
  }
  function text(id, value) { document.getElementById(id).textContent = value == null ? "–" : value; }
  function showJob(job) {
    text("status", job.status.replace("_", " "));
    document.getElementById("status").className = "status " + job.status;
    text("playbook", job.playbook.name);
    text("host", job.server.hostname + " (" + job.server.environment + ")");
    text("user", job.user.username);
    text("created", job.created_at); text("started", job.started_at); text("completed", job.completed_at);
    text("error", job.error_message || "");
    var recap = document.getElementById("recap");
    recap.textContent = "";
    var hosts = job.recap && (job.recap.hosts || job.recap);
    if (hosts) {
      Object.keys(hosts).forEach(function (host) {
        var row = hosts[host], parts = [];
        if (typeof row === "object" && row) {
          Object.keys(row).forEach(function (k) { parts.push(k + " " + row[k]); });
        } else { parts.push(String(row)); }
        var li = document.createElement("li");
        li.textContent = host + ": " + parts.join(" · ");
        recap.appendChild(li);
      });
    }
  }
  function fail(err) {
    stopped = true;
    text("notice", "Stopped following the log: " + err.message);
  }
  function poll() {
    if (stopped) { return; }
    get("/api/jobs/" + jobId + "/logs?after=" + after).then(function (page) {
      page.lines.forEach(function (line) {
        var div = document.createElement("div");
        div.className = "line " + line.level;
        div.dataset.n = line.n;
        div.textContent = line.text;
        logEl.appendChild(div);
        after = line.n;
      });
      if (page.lines.length) { window.scrollTo(0, document.body.scrollHeight); }
      var changed = page.status !== status;
      status = page.status;
      var next = function () {
        if (page.done && !page.more) { text("notice", "The job has ended."); stopped = true; return; }
        timer = setTimeout(poll, page.more ? 0 : 1000);
      };
      if (changed) { get("/api/jobs/" + jobId).then(showJob).then(next, fail); } else { next(); }
    }, fail);
  }
  poll();
})();
"""
SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d1c1d}
header{background:#fff;padding:12px 20px;border-bottom:1px solid #ddd}
h1{font-size:18px;margin:0 0 6px} dl{display:grid;grid-template-columns:max-content 1fr;
gap:2px 12px;margin:0} dt{color:#666} .status{font-weight:600}
.success{color:#107c10} .failed{color:#c50f1f} .running{color:#0063b1}
#log{background:#111;color:#ddd;font:12px/1.45 ui-monospace,monospace;padding:12px 20px;
white-space:pre-wrap;min-height:60vh;margin:0} .line.ERROR{color:#ff8a80}
.line.WARNING{color:#ffd180} #notice,#error{color:#666;margin:6px 0 0} #error{color:#c50f1f}
"""
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()


def register(app: Flask, cfg: ApiConfig, gate: Gate) -> None:
    @app.get("/jobs/<ref>")
    def job_page(ref: str) -> Response:
        call = Call("log.page", "job", ref, link_job=_link_job(ref))

        def work(session: Session, user: User) -> Any:
            permissions.require(user, permissions.LOG_VIEW)
            job = core_jobs.get_job(session, ref)
            call.resource_id = job.job_id
            return job.job_id, user.id

        try:
            job_uuid, user_id = perform(cfg, gate, call, work)
        except PlaybotError as error:
            return _page(status_of(error), "Playbot", f"<p>{html.escape(str(error))}</p>")
        creds = credentials()
        link = creds.value if creds.kind == "link" else cfg.links.sign(job_uuid, user_id)
        return _page(200, f"Job {job_uuid[:8]} · Playbot", _body(job_uuid, link))


def _body(job_uuid: str, link: str) -> str:
    attrs = (f'data-job="{html.escape(job_uuid)}" '
             f'data-link="{html.escape(link)}"')
    facts = "".join(f"<dt>{label}</dt><dd id=\"{key}\">–</dd>" for key, label in (
        ("playbook", "Playbook"), ("host", "Host"), ("user", "By"), ("created", "Created"),
        ("started", "Started"), ("completed", "Completed")))
    return (f'<header id="job" {attrs}><h1>Job {html.escape(job_uuid[:8])} · '
            f'<span id="status" class="status">loading…</span></h1><dl>{facts}</dl>'
            '<p id="error"></p><ul id="recap"></ul><p id="notice"></p></header>'
            f'<pre id="log"></pre><script>{SCRIPT}</script>')


def _page(status: int, title: str, body: str) -> Response:
    document = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
                f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
                f"<body>{body}</body></html>")
    response = Response(document, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'sha256-{SCRIPT_HASH}'; "
        f"style-src 'sha256-{STYLE_HASH}'; connect-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'")
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response



