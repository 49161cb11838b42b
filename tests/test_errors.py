"""Every error is JSON in its API family's shape: under restx, under a plain blueprint, on /v1."""
from __future__ import annotations

import pytest
from flask import Blueprint, request
from flask_restx import Namespace, Resource, fields
from werkzeug.exceptions import HTTPException

from llmgate import errors
from llmgate.api import build_api

BIG = 64  # MAX_CONTENT_LENGTH for these tests


def _plain_blueprint(name: str, prefix: str) -> Blueprint:
    bp = Blueprint(name, __name__, url_prefix=prefix)

    @bp.post("/echo")
    def echo():
        return {"got": request.get_json()}

    @bp.get("/boom")
    def boom():
        raise RuntimeError("boom with sk-lg-secretvalue1234")

    @bp.get("/limited")
    def limited():
        raise errors.RateLimited("slow down", headers={"Retry-After": "3"})

    return bp


def _restx_blueprint() -> tuple[Blueprint, object]:
    ns = Namespace("errtest", path="/api/errtest")
    thing = ns.model("Thing", {"n": fields.Integer(required=True)})

    @ns.route("/echo")
    class Echo(Resource):
        def post(self):
            return {"got": request.get_json()}

    @ns.route("/validated")
    class Validated(Resource):
        @ns.expect(thing, validate=True)
        def post(self):
            return {"ok": True}

    @ns.route("/boom")
    class Boom(Resource):
        def get(self):
            raise RuntimeError("boom")

    @ns.route("/limited")
    class Limited(Resource):
        def get(self):
            raise errors.RateLimited("slow down", headers={"Retry-After": "3"})

    bp = Blueprint("errtest_api", __name__, url_prefix="/restx")
    api = build_api(bp)  # the same assembly as the real /api
    api.add_namespace(ns)
    return bp, api


@pytest.fixture
def error_client(app_factory):
    app = app_factory(MAX_CONTENT_LENGTH=BIG)
    app.register_blueprint(_plain_blueprint("errplain", "/plain"))
    app.register_blueprint(_plain_blueprint("erropenai", "/v1/errtest"))
    app.register_blueprint(_plain_blueprint("erranthropic", "/v1/messages/errtest"))
    bp, api = _restx_blueprint()
    app.register_blueprint(bp)
    client = app.test_client()
    client.restx_wired = HTTPException in api.error_handlers
    return client


CASES = [
    # (method, path suffix, request kwargs, status, code)
    ("post", "/echo", {"data": "x" * (BIG * 2), "content_type": "application/json"}, 413, "payload_too_large"),
    ("post", "/echo", {"data": "a=b", "content_type": "text/plain"}, 415, "unsupported_media_type"),
    ("post", "/echo", {"data": "{not json", "content_type": "application/json"}, 400, "bad_request"),
    ("get", "/boom", {}, 500, "internal_error"),
    ("put", "/echo", {}, 405, "method_not_allowed"),
    ("get", "/no-such-thing", {}, 404, "not_found"),
    ("get", "/limited", {}, 429, "rate_limited"),
]


def _check_llmgate_shape(response, status, code):
    assert response.status_code == status
    assert response.mimetype == "application/json", response.get_data(as_text=True)[:200]
    body = response.get_json()
    assert body["code"] == code and body["message"]


@pytest.mark.parametrize("method,suffix,kwargs,status,code", CASES)
def test_plain_blueprint_errors_are_llmgate_json(error_client, method, suffix, kwargs, status, code):
    response = getattr(error_client, method)("/plain" + suffix, **kwargs)
    _check_llmgate_shape(response, status, code)


@pytest.mark.parametrize("method,suffix,kwargs,status,code", CASES)
def test_restx_errors_are_llmgate_json(error_client, method, suffix, kwargs, status, code):
    if not error_client.restx_wired and status not in (404, 500, 429):
        pytest.xfail("llmgate.api.build_api does not call errors.init_api(api) yet: restx answers {'message'} only")
    response = getattr(error_client, method)("/restx/api/errtest" + suffix, **kwargs)
    _check_llmgate_shape(response, status, code)


@pytest.mark.parametrize("method,suffix,kwargs,status,code", CASES)
def test_openai_paths_answer_openai_errors(error_client, method, suffix, kwargs, status, code):
    response = getattr(error_client, method)("/v1/errtest" + suffix, **kwargs)
    assert response.status_code == status and response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"] and error["type"]


@pytest.mark.parametrize("method,suffix,kwargs,status,code", CASES)
def test_anthropic_paths_answer_anthropic_errors(error_client, method, suffix, kwargs, status, code):
    response = getattr(error_client, method)("/v1/messages/errtest" + suffix, **kwargs)
    assert response.status_code == status and response.mimetype == "application/json"
    body = response.get_json()
    assert body["type"] == "error" and body["error"]["type"] and body["error"]["message"]


def test_details_of_each_case(error_client):
    malformed = error_client.post("/plain/echo", data="{not json", content_type="application/json")
    assert "not valid JSON" in malformed.get_json()["message"]
    not_allowed = error_client.put("/plain/echo")
    assert "POST" in not_allowed.headers["Allow"]
    limited = error_client.get("/v1/errtest/limited")
    assert limited.headers["Retry-After"] == "3" and limited.get_json()["error"]["type"] == "rate_limit_error"
    boom = error_client.get("/plain/boom")
    assert "secretvalue" not in boom.get_data(as_text=True) and boom.headers["x-request-id"]
    assert error_client.post("/v1/messages/errtest/echo", data="x" * 200,
                             content_type="application/json").get_json()["error"]["type"] == "request_too_large"


def test_restx_validation_errors_keep_field_details(error_client):
    if not error_client.restx_wired:
        pytest.xfail("llmgate.api.build_api does not call errors.init_api(api) yet")
    response = error_client.post("/restx/api/errtest/validated", json={"n": "seven"})
    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == "bad_request" and "n" in body["errors"]


def test_real_restx_routes_answer_json(client):
    response = client.post("/healthz")
    assert response.status_code == 405 and response.is_json and "GET" in response.headers["Allow"]
    assert client.get("/api/no-such-endpoint").is_json
