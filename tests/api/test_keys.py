"""/api/keys: create (shown once, never stored), list, read, edit, revoke; members see only theirs."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from llmgate.extensions import db, get_redis


def test_create_shows_the_key_once_and_lists_without_it(client, member, auth_headers):
    headers = auth_headers(member)
    created = client.post("/api/keys", headers=headers, json={
        "name": "ci", "models": ["gpt-4o-mini"], "expires_in": "30d", "rpm": 60, "budget_usd": 3})
    assert created.status_code == 201
    body = created.get_json()
    assert body["key"].startswith("sk-lg-") and len(body["key"]) >= 40
    assert body["prefix"] == body["key"][:12] and body["owner"] == member.email
    assert body["models"] == ["gpt-4o-mini"] and body["rpm"] == 60 and body["budget_period"] == "month"
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(days=29) < expires - datetime.now(timezone.utc) <= timedelta(days=30)

    listed = client.get("/api/keys", headers=headers).get_json()
    assert [k["id"] for k in listed] == [body["id"]] and "key" not in listed[0]
    assert "key" not in client.get(f"/api/keys/{body['id']}", headers=headers).get_json()
    assert client.get("/api/me", headers={"Authorization": f"Bearer {body['key']}"}).status_code == 200


def test_plaintext_is_never_stored(app, client, member, auth_headers):
    headers = auth_headers(member)
    plaintext = client.post("/api/keys", headers=headers, json={"name": "x"}).get_json()["key"]
    client.get("/api/me", headers={"x-api-key": plaintext})  # fills the caches
    client.get("/api/keys", headers=headers)
    secret_part = plaintext[12:]
    with app.app_context():
        with db.engine.connect() as conn:
            for table in db.metadata.sorted_tables:
                for row in conn.execute(sa.select(table)):
                    assert secret_part not in repr(tuple(row)), table.name
        redis = get_redis()
        for name in redis.scan_iter("*"):
            kind = redis.type(name)
            values = {b"string": lambda: [redis.get(name)], b"hash": lambda: list(redis.hgetall(name).items())}
            assert secret_part.encode() not in name
            assert secret_part.encode() not in repr(values.get(kind, lambda: [])()).encode()


def test_members_see_only_their_own_keys(client, admin, member, make_user, make_key, auth_headers):
    other = make_user()
    _, theirs = make_key(other)
    _, mine = make_key(member)
    headers = auth_headers(member)
    assert [k["id"] for k in client.get("/api/keys", headers=headers).get_json()] == [mine.id]
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"name": "mine now"}} if method == "patch" else {}
        response = getattr(client, method)(f"/api/keys/{theirs.id}", headers=headers, **kwargs)
        assert response.status_code == 404, method
    assert client.get("/api/keys?all=true", headers=headers).status_code == 403
    assert client.get(f"/api/keys?user_id={other.id}", headers=headers).status_code == 403
    assert client.post("/api/keys", headers=headers, json={"user_id": other.id}).status_code == 403


def test_admins_see_everyone(client, admin, member, make_key, auth_headers):
    _, key = make_key(member)
    headers = auth_headers(admin)
    assert [k["id"] for k in client.get("/api/keys?all=true", headers=headers).get_json()] == [key.id]
    assert [k["id"] for k in client.get(f"/api/keys?user_id={member.id}", headers=headers).get_json()] == [key.id]
    assert client.get("/api/keys", headers=headers).get_json() == []
    assert client.get(f"/api/keys/{key.id}", headers=headers).status_code == 200
    made = client.post("/api/keys", headers=headers, json={"user_id": member.id, "name": "for you"})
    assert made.status_code == 201 and made.get_json()["user_id"] == member.id


def test_revoke_keeps_the_key_listed_and_refuses_it(client, member, make_key, auth_headers):
    plaintext, key = make_key(member)
    revoked = client.delete(f"/api/keys/{key.id}", headers=auth_headers(member))
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"] is not None
    assert client.get("/api/me", headers={"x-api-key": plaintext}).status_code == 401
    assert client.get("/api/keys", headers=auth_headers(member)).get_json()[0]["revoked_at"] is not None


def test_patch_changes_name_models_expiry_and_limits(client, member, make_key, auth_headers):
    _, key = make_key(member, models=["a"])
    when = (datetime.now(timezone.utc) + timedelta(days=2)).isoformat()
    response = client.patch(f"/api/keys/{key.id}", headers=auth_headers(member),
                            json={"name": "renamed", "models": None, "expires_at": when, "tpm": 100})
    body = response.get_json()
    assert response.status_code == 200
    assert body["name"] == "renamed" and body["models"] is None and body["tpm"] == 100
    assert body["expires_at"] is not None
    cleared = client.patch(f"/api/keys/{key.id}", headers=auth_headers(member), json={"expires_at": None})
    assert cleared.get_json()["expires_at"] is None


def test_creating_a_key_needs_a_fresh_jwt_not_a_key(client, member, make_key):
    plaintext, _ = make_key(member)
    response = client.post("/api/keys", headers={"x-api-key": plaintext}, json={"name": "x"})
    assert response.status_code == 401 and response.get_json()["code"] == "fresh_token_required"


def test_anonymous_is_401_everywhere(client, member, make_key):
    _, key = make_key(member)
    for method, url in (("get", "/api/keys"), ("post", "/api/keys"), ("get", f"/api/keys/{key.id}"),
                        ("patch", f"/api/keys/{key.id}"), ("delete", f"/api/keys/{key.id}")):
        response = getattr(client, method)(url, json={} if method in ("post", "patch") else None)
        assert response.status_code == 401 and response.is_json, (method, url)


@pytest.mark.parametrize("body,field", [
    ({"name": 5}, "name"),
    ({"name": "n" * 101}, "name"),
    ({"models": "gpt-4o"}, "models"),
    ({"models": [1, 2]}, "models.0"),
    ({"models": ["m" * 201]}, "models.0"),
    ({"expires_in": "forever"}, "expires_in"),
    ({"expires_in": "0d"}, "expires_in"),
    ({"expires_at": "tomorrow"}, "expires_at"),
    ({"expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
    ({"expires_in": "1d", "expires_at": "2999-01-01T00:00:00Z"}, "expires_in"),
    ({"rpm": -1}, "rpm"),
    ({"max_concurrency": 1.5}, "max_concurrency"),
    ({"budget_period": "fortnight"}, "budget_period"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_input_names_the_field(client, member, make_key, auth_headers, body, field):
    created = client.post("/api/keys", headers=auth_headers(member), json=body)
    assert created.status_code == 422 and field in created.get_json()["errors"], created.get_json()
    _, key = make_key(member)
    patched = client.patch(f"/api/keys/{key.id}", headers=auth_headers(member), json=body)
    if field != "user_id":
        assert patched.status_code == 422 and field in patched.get_json()["errors"], patched.get_json()


@pytest.mark.parametrize("query", ["all=maybe", "user_id=abc", "user_id=-1"])
def test_bad_query_parameters(client, admin, auth_headers, query):
    response = client.get(f"/api/keys?{query}", headers=auth_headers(admin))
    assert response.status_code == 422 and response.is_json


def test_non_json_and_non_object_bodies(client, member, auth_headers):
    headers = auth_headers(member)
    assert client.post("/api/keys", headers=headers, data="name=x", content_type="text/plain").status_code == 415
    assert client.post("/api/keys", headers=headers, json=["x"]).status_code == 400
    assert client.post("/api/keys", headers=headers).status_code == 201  # an empty body means defaults
