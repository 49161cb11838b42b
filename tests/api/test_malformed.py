"""Hand-written malformed requests where the fuzzer does not reach (or not every run): a 4xx
with a useful JSON message (a rendered page on /dashboard), never a 500, on both backends.

Each case here was a 500 once: ids past the database's integer range (SQLite's driver raises
OverflowError, PostgreSQL "integer out of range"), text with NUL (PostgreSQL refuses it), dates
at the edge of the calendar, or a query parameter passed through unchecked.
"""
from __future__ import annotations

import io

import pytest

from tests.dashboard.conftest import Browser

HUGE = "9" * 30           # past 64 bits: SQLite overflows
PAST_INT4 = str(2**31)    # past PostgreSQL's INTEGER


def _json_error(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.is_json
    return response.get_json()


def _api_error(response, status: int) -> dict:
    body = _json_error(response, status)
    assert body["message"] and body["code"], body
    return body


def _openai_error(response, status: int) -> dict:
    body = _json_error(response, status)["error"]
    assert body["message"] and body["type"], body
    return body


@pytest.mark.parametrize("number", [HUGE, PAST_INT4])
@pytest.mark.parametrize("method,path", [
    ("get", "/api/users/{n}"), ("patch", "/api/users/{n}"), ("delete", "/api/users/{n}"),
    ("get", "/api/keys/{n}"), ("patch", "/api/keys/{n}"), ("delete", "/api/keys/{n}"),
])
def test_ids_past_the_integer_range_are_404(client, admin, auth_headers, method, path, number):
    kwargs = {"json": {"rpm": 5}} if method == "patch" else {}
    response = getattr(client, method)(path.format(n=number), headers=auth_headers(admin), **kwargs)
    _api_error(response, 404)


def test_id_filters_past_the_integer_range(client, admin, auth_headers):
    headers = auth_headers(admin)
    assert client.get(f"/api/keys?user_id={PAST_INT4}", headers=headers).get_json() == []
    _api_error(client.post("/api/keys", headers=headers, json={"user_id": int(HUGE)}), 404)
    for query in (f"user_id={HUGE}", f"key_id={PAST_INT4}", "user_id=-1"):
        assert "errors" in _api_error(client.get(f"/api/usage?{query}", headers=headers), 422)
    assert client.get("/api/usage?key_id=0", headers=headers).status_code == 200  # 0: calls made without a key


@pytest.mark.parametrize("query,field", [
    ("end=9999-12-31", "end"), ("end=0001-01-01", "end"),
    ("start=9999-12-31T23:00:00-05:00", "start"), ("model=a%00b", "model"),
])
def test_usage_dates_at_the_edge_of_the_calendar_and_nul(client, admin, auth_headers, query, field):
    body = _api_error(client.get(f"/api/usage?{query}", headers=auth_headers(admin)), 422)
    assert field in body["errors"]


def test_text_with_nul_is_refused_or_names_nothing(client, admin, auth_headers):
    headers = auth_headers(admin)
    created = _api_error(client.post("/api/users", headers=headers,
                                     json={"email": "a\x00@example.com", "password": "pw-Secret-123"}), 422)
    assert created["errors"] == {"email": "must not contain NUL characters"}
    _api_error(client.post("/api/auth/login", json={"email": "a\x00@b.c", "password": "x"}), 422)
    _api_error(client.post("/api/keys", headers=headers, json={"name": "a\x00b"}), 422)
    for method, path in [("get", "/api/batches/a%00b"), ("post", "/api/batches/a%00b/cancel"),
                         ("get", "/api/batches/a%00b/download"), ("get", "/api/batches?after=a%00b")]:
        _api_error(getattr(client, method)(path, headers=headers), 404)
    _api_error(client.get("/api/batches?kind=a%00", headers=headers), 422)
    _api_error(client.get("/api/batches/download/a%00b"), 403)


def test_v1_malformed_requests_are_openai_shaped_4xx(client, member, make_key):
    plaintext, _ = make_key(member)
    key = {"Authorization": f"Bearer {plaintext}"}
    hello = [{"role": "user", "content": "hi"}]
    cases = [
        ({"data": "not json", "content_type": "text/plain"}, 400),
        ({"data": ""}, 400),
        ({"json": [1, 2]}, 400),
        ({"json": {"model": 5, "messages": "x"}}, 400),
        ({"json": {"model": "nope", "messages": []}}, 400),
        ({"json": {"model": "nope", "messages": hello}}, 404),
        ({"json": {"model": "nope", "messages": hello, "max_tokens": 10**40}}, 404),
    ]
    for kwargs, status in cases:
        _openai_error(client.post("/v1/chat/completions", headers=key, **kwargs), status)
    _openai_error(client.post("/v1/chat/completions", headers={**key, "x-llmgate-timeout": "nan"},
                              json={"model": "nope", "messages": hello}), 400)
    _openai_error(client.post("/v1/embeddings", headers=key, json={}), 400)
    _openai_error(client.post("/v1/embeddings", headers=key, json={"model": "nope", "input": 5}), 404)
    anthropic = client.post("/v1/messages", headers=key, data="{bad")
    assert anthropic.status_code == 400 and anthropic.get_json()["type"] == "error"

    _openai_error(client.get(f"/v1/files?limit={HUGE}", headers=key), 422)
    _openai_error(client.get("/v1/files?purpose=a%00", headers=key), 422)
    _openai_error(client.post("/v1/batches", headers=key, data="x", content_type="text/plain"), 400)
    _openai_error(client.post("/v1/batches", headers=key, json={"input_file_id": 5, "endpoint": []}), 422)
    _openai_error(client.post("/v1/batches", headers=key,
                              json={"input_file_id": "file-\x00", "endpoint": "/v1/chat/completions"}), 404)
    for path in ("/v1/batches/ab%00c", "/v1/files/ab%00c", "/v1/batches?after=a%00"):
        _openai_error(client.get(path, headers=key), 404)
    _openai_error(client.get(f"/v1/batches?limit={HUGE}", headers=key), 422)

    upload = client.post("/v1/files", headers=key, content_type="multipart/form-data",
                         data={"purpose": "batch", "file": (io.BytesIO(b"{}\n"), "a\x00b.jsonl")})
    assert upload.status_code == 200 and upload.get_json()["filename"] == "ab.jsonl"


def test_dashboard_answers_a_page_not_a_500(app, admin, member, make_key):
    _, key = make_key(member)
    browser = Browser(app.test_client())
    browser.sign_in(admin)
    for path, status in [(f"/dashboard/admin/users/{HUGE}", 404), (f"/dashboard/keys/{HUGE}", 404),
                         (f"/dashboard/admin/users/{PAST_INT4}", 404),
                         ("/dashboard/usage?start=0001-01-01&end=9999-12-31", 422),
                         ("/dashboard/usage.csv?end=9999-12-31", 422)]:
        response = browser.get(path)
        assert (response.status_code, response.mimetype) == (status, "text/html"), path
    for path, data, status in [(f"/dashboard/keys/{HUGE}", {"name": "x"}, 404),
                               (f"/dashboard/keys/{HUGE}/revoke", {}, 404),
                               (f"/dashboard/admin/users/{HUGE}", {"role": "admin"}, 404),
                               ("/dashboard/keys", {"name": "a\x00b"}, 422),
                               (f"/dashboard/keys/{key.id}", {"name": "a\x00", "models": "x\x00"}, 422),
                               ("/dashboard/admin/users", {"email": "x\x00@y.z", "password": "pw-Secret-123",
                                                           "role": "member"}, 422)]:
        response = browser.post(path, data)
        assert (response.status_code, response.mimetype) == (status, "text/html"), path
