"""The Flask app of the API and the live log page (see the package docstring)."""

from __future__ import annotations

import logging
import uuid

from flask import Flask, Response, g, jsonify
from werkzeug.exceptions import HTTPException

from core.errors import PlaybotError
from handlers.api import catalog_routes, jobs_routes, openapi, page
from handlers.api.calls import Gate
from handlers.api.config import ApiConfig
from handlers.api.problems import from_error, problem

log = logging.getLogger("playbot.api")
MAX_BODY_BYTES = 256 * 1024  # a launch body is small; waitress refuses far larger ones first


def create_api(cfg: ApiConfig) -> Flask:
    """The WSGI app serving `/api/…` and `/jobs/{id}`."""
    app = Flask("playbot.api")
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES, JSON_SORT_KEYS=False)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    gate = Gate(cfg)
    jobs_routes.register(app, cfg, gate)
    catalog_routes.register(app, cfg, gate)
    page.register(app, cfg, gate)

    @app.get("/api/openapi.json")
    def openapi_json() -> Response:
        return jsonify(openapi.SPEC)

    @app.errorhandler(PlaybotError)
    def domain_error(error: PlaybotError) -> Response:
        return from_error(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        detail = {404: "No such API endpoint; /api/openapi.json lists them.",
                  405: "This endpoint does not take that method.",
                  413: "The request body is too large."}.get(status, error.description or "")
        return problem(status, detail)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        ref = uuid.uuid4().hex[:10]
        log.error("unexpected API error ref=%s", ref, exc_info=error)
        return problem(500, f"Something went wrong inside Playbot (reference {ref}). Whatever "
                            "had already completed is kept; try again in a moment.")

    @app.after_request
    def request_id(response: Response) -> Response:
        if "request_id" in g:
            response.headers["X-Request-Id"] = g.request_id
        return response

    return app
