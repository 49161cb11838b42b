"""The REST API's contract, read from ``GET /swagger.json``.

- it is a valid Swagger 2.0 document (flask-restx emits 2.0, not OpenAPI 3);
- every operation has a summary, a security requirement (its own or the document's; ``[]``
  says "no login" explicitly) and documents the 4xx answers its inputs can cause;
- the spec and Flask's url_map agree: every documented path is routed, and every ``/api``
  route is documented.

``test_fuzz.py`` then checks that the app behaves as documented.
"""
from __future__ import annotations

import re

import pytest
from openapi_spec_validator import OpenAPIV2SpecValidator, validate

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch"}


@pytest.fixture
def spec(client):
    response = client.get("/swagger.json")
    assert response.status_code == 200 and response.is_json
    return response.get_json()


def _operations(spec):
    for path, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method in HTTP_METHODS:
                yield path, method, op, shared + op.get("parameters", [])


def test_spec_is_valid_swagger_2(spec):
    assert spec["swagger"] == "2.0"
    validate(spec, cls=OpenAPIV2SpecValidator)  # raises with the offending pointer


def test_every_operation_has_a_summary_and_declares_security(spec):
    schemes = set(spec.get("securityDefinitions", {}))
    problems = []
    for path, method, op, _ in _operations(spec):
        if not (op.get("summary") or "").strip():
            problems.append(f"{method.upper()} {path}: no summary")
        security = op.get("security", spec.get("security"))
        if security is None:
            problems.append(f"{method.upper()} {path}: no security requirement (use [] for none)")
        elif any(name not in schemes for requirement in security for name in requirement):
            problems.append(f"{method.upper()} {path}: security names an undefined scheme")
    assert not problems, "\n".join(problems)


def test_every_operation_documents_the_4xx_its_inputs_can_cause(spec):
    problems = []
    for path, method, op, params in _operations(spec):
        documented = {int(code) for code in op.get("responses", {}) if code.isdigit()}
        if not any(200 <= code < 300 for code in documented):
            problems.append(f"{method.upper()} {path}: no success response")
        needed = set()
        if op.get("security", spec.get("security")):
            needed.add(401)            # no / bad credentials
        kinds = {p["in"] for p in params}
        if "body" in kinds or "formData" in kinds:
            needed |= {400, 415, 422}  # not an object / not JSON / a field is wrong
        if "path" in kinds:
            needed.add(404)            # no such resource
        if "query" in kinds:
            needed.add(422)            # a query parameter is wrong
        for code in sorted(needed - documented):
            problems.append(f"{method.upper()} {path}: {code} not documented")
        for code, response in op.get("responses", {}).items():
            if code.isdigit() and 400 <= int(code) < 500 and "schema" not in response:
                problems.append(f"{method.upper()} {path}: {code} has no error schema")
    assert not problems, "\n".join(problems)


def _swagger_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_spec_and_url_map_agree(app, spec):
    routed: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        routed.setdefault(_swagger_path(rule.rule), set()).update(m.lower() for m in rule.methods or ())
    documented = {(path, method) for path, method, _, _ in _operations(spec)}

    missing_routes = sorted(f"{m.upper()} {p}" for p, m in documented if m not in routed.get(p, set()))
    assert not missing_routes, f"documented but not routed: {missing_routes}"

    undocumented = sorted(
        f"{method.upper()} {path}"
        for path, methods in routed.items() if path == "/api" or path.startswith("/api/")
        for method in methods - {"head", "options"}
        if (path, method) not in documented
    )
    assert not undocumented, f"routed under /api but not in the spec: {undocumented}"
