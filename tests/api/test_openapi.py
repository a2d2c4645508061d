"""The OpenAPI description at /api/openapi.json is valid and names exactly the routes the
app serves, with their methods."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from handlers.api import openapi


def served_routes(app) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out.add((path, method.lower()))
    return out


def described_routes(spec) -> set[tuple[str, str]]:
    return {(path, method) for path, item in spec["paths"].items() for method in item}


def test_the_description_names_exactly_the_served_routes(api):
    app = api.harness.server.wsgi_app.api

    assert described_routes(openapi.SPEC) == served_routes(app)


def test_the_served_description_is_the_spec_and_needs_no_token(api):
    answer = api.get("/api/openapi.json")

    assert answer.status == 200 and answer.body == openapi.SPEC
    assert answer.body["openapi"].startswith("3.1")


def test_every_path_parameter_is_declared_and_every_ref_resolves():
    schemas = openapi.SPEC["components"]["schemas"]
    for path, item in openapi.SPEC["paths"].items():
        wanted = set(re.findall(r"{([^}]+)}", path))
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == wanted, (path, method)
            assert operation["responses"], (path, method)
    refs = re.findall(r"#/components/schemas/(\w+)", str(openapi.SPEC))
    assert refs and all(ref in schemas for ref in refs)


def test_the_description_is_a_valid_openapi_3_1_document():
    validate(openapi.SPEC)  # raises with the first problem found
