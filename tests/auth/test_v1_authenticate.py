"""llmgate.auth.v1.authenticate: API keys and JWTs on /v1, served from cache, changes within 1 s."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from flask import request
from flask_jwt_extended import create_access_token, create_refresh_token
from sqlalchemy import event

from llmgate.auth import keys, principal_cache, v1
from llmgate.errors import Unauthorized
from llmgate.extensions import db, get_redis


def authenticate(app, **headers):
    with app.test_request_context("/v1/chat/completions", headers=headers):
        return v1.authenticate(request)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_api_key_as_bearer_or_x_api_key(app, member, make_key):
    plaintext, key = make_key(member, rpm=10, budget_usd=5)
    for headers in (bearer(plaintext), {"x-api-key": plaintext}):
        principal = authenticate(app, **headers)
        assert (principal.user_id, principal.key_id, principal.role) == (member.id, key.id, "member")
        assert principal.key_prefix == plaintext[:12]
        assert principal.key_limits.rpm == 10
        assert principal.key_budget.limit_usd == 5 and principal.key_budget.period == "month"


def test_user_limits_travel_on_the_principal(app, make_user, make_key):
    user = make_user(tpm=1000, max_concurrency=3, budget_usd=20, budget_period="week", budget_soft_usd=15)
    plaintext, _ = make_key(user)
    principal = authenticate(app, **bearer(plaintext))
    assert principal.user_limits.tpm == 1000 and principal.user_limits.max_concurrency == 3
    assert principal.user_budget.period == "week" and principal.user_budget.soft_limit_usd == 15


def test_jwt_access_token_gives_a_principal_without_key(app, admin, auth_headers):
    principal = authenticate(app, **auth_headers(admin))
    assert principal.user_id == admin.id and principal.is_admin and principal.key_id is None


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic abc"},
    {"Authorization": "Bearer sk-lg-not-a-real-key"},
    {"x-api-key": "sk-other-vendor"},
    {"Authorization": "Bearer a.b.c"},
    {"Authorization": "Bearer " + "x" * 5000},
])
def test_missing_or_unknown_credentials_are_refused(app, headers):
    with pytest.raises(Unauthorized):
        authenticate(app, **headers)


def test_refresh_tokens_and_revoked_access_tokens_are_refused(app, member, login):
    tokens = login(member)
    with pytest.raises(Unauthorized):
        authenticate(app, **bearer(tokens["refresh_token"]))
    assert authenticate(app, **bearer(tokens["access_token"])).user_id == member.id
    response = app.test_client().post("/api/auth/logout", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    with pytest.raises(Unauthorized):
        authenticate(app, **bearer(tokens["access_token"]))


def test_expired_and_tampered_jwts_are_refused(app, member):
    with app.app_context():
        expired = create_access_token(identity=member, expires_delta=timedelta(seconds=-5))
        good = create_access_token(identity=member)
    head, payload, signature = good.split(".")
    tampered = f"{head}.{payload}.{signature[:-4]}AAAA"
    for token in (expired, tampered):
        with pytest.raises(Unauthorized):
            authenticate(app, **bearer(token))


def test_revocation_reaches_another_process_within_a_second(app_factory, app, admin, member, make_key, login):
    plaintext, key = make_key(member)
    other = app_factory()
    assert authenticate(other, **bearer(plaintext)).key_id == key.id  # now cached in `other`
    response = app.test_client().delete(f"/api/keys/{key.id}", headers=bearer(login(member)["access_token"]))
    assert response.status_code == 200
    time.sleep(1.05)
    with pytest.raises(Unauthorized):
        authenticate(other, **bearer(plaintext))


def test_a_revocation_during_a_cache_fill_is_not_undone_by_it(app_factory, app, member, make_key, login):
    # `other` misses every cache and reads the key from the database; the revocation commits
    # and invalidates right after that read (as `other` goes on to load the key's user), before
    # `other` fills Redis with what it read.
    plaintext, key = make_key(member)
    other = app_factory()
    access = login(member)["access_token"]
    revoked = []

    def revoke_after_the_read(conn, cursor, statement, parameters, context, executemany):
        if "FROM users" in statement and not revoked:
            revoked.append(app.test_client().delete(f"/api/keys/{key.id}", headers=bearer(access)).status_code)

    with other.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", revoke_after_the_read)
    try:
        assert authenticate(other, **bearer(plaintext)).key_id == key.id  # read before the revocation
    finally:
        event.remove(engine, "before_cursor_execute", revoke_after_the_read)
    assert revoked == [200]
    # What `other` read was not cached, in Redis or in process: the very next call is refused.
    with pytest.raises(Unauthorized):
        authenticate(other, **bearer(plaintext))
    with pytest.raises(Unauthorized):
        authenticate(app_factory(), **bearer(plaintext))


def test_deactivation_and_role_change_reach_another_process_within_a_second(app_factory, app, admin, member,
                                                                           make_key, auth_headers):
    plaintext, _ = make_key(member)
    other = app_factory()
    assert authenticate(other, **bearer(plaintext)).role == "member"
    client = app.test_client()
    assert client.patch(f"/api/users/{member.id}", json={"role": "admin", "rpm": 7},
                        headers=auth_headers(admin)).status_code == 200
    time.sleep(1.05)
    principal = authenticate(other, **bearer(plaintext))
    assert principal.role == "admin" and principal.user_limits.rpm == 7
    assert client.patch(f"/api/users/{member.id}", json={"active": False}, headers=auth_headers(admin)).status_code == 200
    time.sleep(1.05)
    with pytest.raises(Unauthorized):
        authenticate(other, **bearer(plaintext))


def test_model_allow_list_is_on_the_principal(app, member, make_key):
    limited, _ = make_key(member, models=["gpt-4o-mini", "claude-haiku"])
    unlimited, _ = make_key(member)
    principal = authenticate(app, **bearer(limited))
    assert principal.may_use("gpt-4o-mini") and not principal.may_use("gpt-4o")
    assert authenticate(app, **bearer(unlimited)).may_use("anything")


def test_allow_list_change_takes_effect_within_a_second(app_factory, app, member, make_key, auth_headers):
    plaintext, key = make_key(member, models=["a"])
    other = app_factory()
    assert not authenticate(other, **bearer(plaintext)).may_use("b")
    response = app.test_client().patch(f"/api/keys/{key.id}", json={"models": ["a", "b"]}, headers=auth_headers(member))
    assert response.status_code == 200
    time.sleep(1.05)
    assert authenticate(other, **bearer(plaintext)).may_use("b")


def test_expiry_is_honoured_even_from_cache(app, member, make_key):
    plaintext, key = make_key(member, expires_in="2s")
    assert authenticate(app, **bearer(plaintext)).key_id == key.id
    time.sleep(2.1)
    with pytest.raises(Unauthorized):
        authenticate(app, **bearer(plaintext))


def test_hot_path_costs_no_database_query(app, member, make_key):
    plaintext, _ = make_key(member)
    authenticate(app, **bearer(plaintext))  # fills Redis and the in-process cache
    statements = []
    with app.app_context():
        engine = db.engine
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        authenticate(app, **bearer(plaintext))  # in-process cache
        with app.app_context():
            principal_cache.local_cache().clear()
        authenticate(app, **bearer(plaintext))  # Redis
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert statements == []


def test_last_used_is_recorded_in_redis_and_flushed_lazily(app, member, make_key, auth_headers):
    plaintext, key = make_key(member)
    authenticate(app, **bearer(plaintext))
    with app.app_context():
        assert get_redis().hget(keys.LAST_USED_HASH, str(key.id)) is not None
        assert db.session.get(type(key), key.id).last_used_at is None  # not written on the hot path
    listed = app.test_client().get("/api/keys", headers=auth_headers(member)).get_json()
    assert listed[0]["last_used_at"] is not None
    with app.app_context():
        assert get_redis().hget(keys.LAST_USED_HASH, str(key.id)) is None


def test_worker_loop_is_registered_and_flushes_until_stopped(app, member, make_key):
    import threading

    assert keys.last_used_flush_loop in app.extensions["llmgate.worker_loops"]
    plaintext, key = make_key(member)
    authenticate(app, **bearer(plaintext))
    stop = threading.Event()
    thread = threading.Thread(target=keys.last_used_flush_loop, args=(app, stop), daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    with app.app_context():
        while time.monotonic() < deadline and get_redis().hexists(keys.LAST_USED_HASH, str(key.id)):
            time.sleep(0.05)
        db.session.remove()
        assert db.session.get(type(key), key.id).last_used_at is not None
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_jwt_of_a_deleted_user_is_refused(app, admin, member, auth_headers):
    headers = auth_headers(member)
    assert app.test_client().delete(f"/api/users/{member.id}", headers=auth_headers(admin)).status_code == 204
    with pytest.raises(Unauthorized):
        authenticate(app, **headers)


def test_refresh_token_identity_is_not_an_access_token(app, member):
    with app.app_context():
        refresh = create_refresh_token(identity=member)
    with pytest.raises(Unauthorized):
        authenticate(app, **{"x-api-key": refresh})
