"""CORS from LLMGATE_CORS_ORIGINS: Flask-Cors 6 echoes an allowed Origin with Vary: Origin."""
from __future__ import annotations

import pytest

ALLOWED = "https://app.example.com"
OTHER_ALLOWED = "http://localhost:3000"
DISALLOWED = "https://evil.example.net"


@pytest.fixture
def cors_client(app_factory):
    # Flask-Cors adds Vary: Origin only when the answer can differ between origins (several allowed).
    return app_factory(CORS_ORIGINS=[ALLOWED, OTHER_ALLOWED]).test_client()


def preflight(client, origin):
    return client.options("/healthz", headers={
        "Origin": origin, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization, content-type, x-api-key"})


def test_preflight_from_an_allowed_origin(cors_client):
    response = preflight(cors_client, ALLOWED)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Origin" in response.headers.get("Vary", "")
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-api-key"} <= allowed


def test_preflight_from_a_disallowed_origin(cors_client):
    response = preflight(cors_client, DISALLOWED)
    assert "Access-Control-Allow-Origin" not in response.headers


def test_actual_request_from_allowed_and_disallowed_origins(cors_client):
    allowed = cors_client.get("/healthz", headers={"Origin": ALLOWED})
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "x-request-id" in allowed.headers["Access-Control-Expose-Headers"].lower()
    assert "Origin" in allowed.headers.get("Vary", "")
    refused = cors_client.get("/healthz", headers={"Origin": DISALLOWED})
    assert refused.status_code == 200 and "Access-Control-Allow-Origin" not in refused.headers


def test_no_cors_headers_without_configured_origins(client):
    assert "Access-Control-Allow-Origin" not in client.get("/healthz", headers={"Origin": ALLOWED}).headers
