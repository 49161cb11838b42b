"""/api/auth (login, refresh, logout) and /api/me, including across two app instances."""
from __future__ import annotations

from datetime import timedelta

import pytest
from flask_jwt_extended import create_access_token

from tests.conftest import DEFAULT_PASSWORD


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_login_refresh_logout_across_two_instances(app_factory, app, member):
    one, two = app.test_client(), app_factory().test_client()
    tokens = one.post("/api/auth/login", json={"email": member.email, "password": DEFAULT_PASSWORD}).get_json()
    assert set(tokens) == {"access_token", "refresh_token"}
    assert two.get("/api/me", headers=bearer(tokens["access_token"])).get_json()["email"] == member.email

    refreshed = two.post("/api/auth/refresh", headers=bearer(tokens["refresh_token"]))
    assert refreshed.status_code == 200
    new_access = refreshed.get_json()["access_token"]
    assert one.get("/api/me", headers=bearer(new_access)).status_code == 200

    assert one.post("/api/auth/logout", headers=bearer(tokens["access_token"])).status_code == 200
    gone = two.get("/api/me", headers=bearer(tokens["access_token"]))
    assert gone.status_code == 401 and gone.get_json()["code"] == "token_revoked"

    assert two.post("/api/auth/logout", headers=bearer(tokens["refresh_token"])).status_code == 200
    assert one.post("/api/auth/refresh", headers=bearer(tokens["refresh_token"])).status_code == 401


def test_login_is_case_insensitive_on_email(client, make_user):
    make_user("Carol@Example.com")
    response = client.post("/api/auth/login", json={"email": "CAROL@example.COM", "password": DEFAULT_PASSWORD})
    assert response.status_code == 200


@pytest.mark.parametrize("email,password", [("member@example.com", "wrong-password"),
                                            ("nobody@example.com", DEFAULT_PASSWORD)])
def test_bad_credentials_look_the_same(client, member, email, password):
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 401
    assert response.get_json() == {"message": "Invalid email or password.", "code": "invalid_credentials"}


def test_deactivated_user_cannot_log_in(client, make_user):
    user = make_user(active=False)
    response = client.post("/api/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 401


def test_refreshed_token_is_not_fresh(client, member, login):
    tokens = login(member)
    access = client.post("/api/auth/refresh", headers=bearer(tokens["refresh_token"])).get_json()["access_token"]
    response = client.post("/api/keys", json={"name": "x"}, headers=bearer(access))
    assert response.status_code == 401 and response.get_json()["code"] == "fresh_token_required"
    assert client.post("/api/keys", json={"name": "x"}, headers=bearer(tokens["access_token"])).status_code == 201


def test_access_token_cannot_refresh(client, member, login):
    tokens = login(member)
    response = client.post("/api/auth/refresh", headers=bearer(tokens["access_token"]))
    assert response.status_code == 401 and "message" in response.get_json()


def test_role_travels_as_a_claim(app, admin, login):
    from flask_jwt_extended import decode_token

    with app.app_context():
        assert decode_token(login(admin)["access_token"])["role"] == "admin"


def test_expired_tampered_and_garbage_tokens_are_json_401(app, client, member):
    with app.app_context():
        expired = create_access_token(identity=member, expires_delta=timedelta(seconds=-1))
        good = create_access_token(identity=member)
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    for headers in (bearer(expired), bearer(tampered), bearer("garbage"), bearer("a.b.c"), {"Authorization": "Bearer"},
                    {}):
        response = client.get("/api/me", headers=headers)
        assert response.status_code == 401, headers
        assert response.is_json and {"message", "code"} <= set(response.get_json())
    assert client.get("/api/me", headers=bearer(expired)).get_json()["code"] == "token_expired"


def test_password_change_needs_fresh_token_and_ends_old_sessions(client, member, login):
    tokens = login(member)
    old = bearer(tokens["access_token"])
    refreshed = client.post("/api/auth/refresh", headers=bearer(tokens["refresh_token"])).get_json()["access_token"]
    assert client.post("/api/me/password", json={"password": "new-Secret-456"},
                       headers=bearer(refreshed)).status_code == 401
    # The token must predate the change by a whole second to be refused (JWT iat is in seconds).
    import time
    time.sleep(1.05)
    assert client.post("/api/me/password", json={"password": "new-Secret-456"}, headers=old).status_code == 204
    assert client.get("/api/me", headers=old).status_code == 401
    assert client.post("/api/auth/refresh", headers=bearer(tokens["refresh_token"])).status_code == 401
    login(member, password="new-Secret-456")


def test_me_with_an_api_key(client, member, make_key):
    plaintext, key = make_key(member, models=["a"])
    body = client.get("/api/me", headers={"x-api-key": plaintext}).get_json()
    assert body["key_id"] == key.id and body["allowed_models"] == ["a"] and body["role"] == "member"


def test_login_rate_limited_per_account(app_factory, member):
    client = app_factory(AUTH_LOGIN_ACCOUNT_MAX_FAILURES=3).test_client()
    for _ in range(3):
        assert client.post("/api/auth/login", json={"email": member.email, "password": "wrong-pw"}).status_code == 401
    refused = client.post("/api/auth/login", json={"email": member.email, "password": DEFAULT_PASSWORD})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert refused.get_json()["code"] == "too_many_login_attempts"
    # An unknown email is throttled the same way: a 429 reveals nothing.
    for _ in range(3):
        client.post("/api/auth/login", json={"email": "ghost@example.com", "password": "wrong-pw"})
    assert client.post("/api/auth/login", json={"email": "ghost@example.com", "password": "x"}).status_code == 429


def test_login_rate_limited_per_address(app_factory, member):
    client = app_factory(AUTH_LOGIN_ADDRESS_MAX_ATTEMPTS=4).test_client()
    for index in range(4):
        client.post("/api/auth/login", json={"email": f"u{index}@example.com", "password": "wrong-pw"})
    refused = client.post("/api/auth/login", json={"email": member.email, "password": DEFAULT_PASSWORD})
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    other_address = client.post("/api/auth/login", json={"email": member.email, "password": DEFAULT_PASSWORD},
                                environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other_address.status_code == 200


def test_successful_login_resets_the_account_counter(app_factory, member):
    client = app_factory(AUTH_LOGIN_ACCOUNT_MAX_FAILURES=2).test_client()
    client.post("/api/auth/login", json={"email": member.email, "password": "wrong-pw"})
    assert client.post("/api/auth/login", json={"email": member.email, "password": DEFAULT_PASSWORD}).status_code == 200
    client.post("/api/auth/login", json={"email": member.email, "password": "wrong-pw"})
    assert client.post("/api/auth/login", json={"email": member.email, "password": DEFAULT_PASSWORD}).status_code == 200


@pytest.mark.parametrize("kwargs,status,field", [
    ({"json": {"email": "a@b.c"}}, 422, "password"),
    ({"json": {"email": 5, "password": "x"}}, 422, "email"),
    ({"json": {"email": "a@b.c", "password": "x", "remember": True}}, 422, "remember"),
    ({"json": {"email": "a" * 300, "password": "x"}}, 422, "email"),
    ({"json": {"email": "a@b.c", "password": "x" * 1000}}, 422, "password"),
    ({"json": ["a@b.c", "x"]}, 400, "body"),
    ({"data": "{not json", "content_type": "application/json"}, 400, "body"),
    ({"data": "email=a@b.c", "content_type": "application/x-www-form-urlencoded"}, 415, None),
    ({}, 400, "body"),
])
def test_login_bad_input(client, kwargs, status, field):
    response = client.post("/api/auth/login", **kwargs)
    assert response.status_code == status
    body = response.get_json()
    assert body["code"] and body["message"]
    if field:
        assert field in body["errors"]


def test_secrets_are_not_logged(client, member, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    client.post("/api/auth/login", json={"email": member.email, "password": "wrong-Secret-999"})
    tokens = client.post("/api/auth/login", json={"email": member.email, "password": DEFAULT_PASSWORD}).get_json()
    text = caplog.text
    assert "wrong-Secret-999" not in text and DEFAULT_PASSWORD not in text
    assert tokens["access_token"] not in text and tokens["refresh_token"] not in text


def test_swagger_documents_the_error_responses(client):
    spec = client.get("/swagger.json").get_json()
    login = spec["paths"]["/api/auth/login"]["post"]["responses"]
    assert {"200", "400", "401", "415", "422", "429"} <= set(login)
    for path in ("/api/users", "/api/users/{user_id}"):
        for method, operation in spec["paths"][path].items():
            if method != "parameters":
                assert {"401", "403"} <= set(operation["responses"]), (path, method)
