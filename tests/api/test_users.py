"""/api/users: admin only, CRUD, validation, and the last admin is protected."""
from __future__ import annotations

import pytest

from tests.conftest import DEFAULT_PASSWORD

ADMIN_ROUTES = [
    ("get", "/api/users", None),
    ("post", "/api/users", {"email": "new@example.com", "password": DEFAULT_PASSWORD}),
    ("get", "/api/users/{id}", None),
    ("patch", "/api/users/{id}", {"role": "admin"}),
    ("delete", "/api/users/{id}", None),
]


@pytest.mark.parametrize("method,path,body", ADMIN_ROUTES)
def test_admin_routes_refuse_members_and_anonymous(client, member, auth_headers, make_key, method, path, body):
    url = path.format(id=member.id)
    kwargs = {"json": body} if body is not None else {}
    anonymous = getattr(client, method)(url, **kwargs)
    assert anonymous.status_code == 401 and anonymous.is_json
    as_member = getattr(client, method)(url, headers=auth_headers(member), **kwargs)
    assert as_member.status_code == 403 and as_member.get_json()["code"] == "forbidden"
    plaintext, _ = make_key(member)
    with_key = getattr(client, method)(url, headers={"x-api-key": plaintext}, **kwargs)
    assert with_key.status_code == 403


def test_crud(client, admin, auth_headers):
    headers = auth_headers(admin)
    created = client.post("/api/users", headers=headers, json={
        "email": "Dave@Example.com", "password": DEFAULT_PASSWORD, "rpm": 60, "budget_usd": 10.5})
    assert created.status_code == 201
    user = created.get_json()
    assert user["email"] == "dave@example.com" and user["role"] == "member" and user["active"] is True
    assert user["rpm"] == 60 and user["budget_usd"] == 10.5 and user["budget_period"] == "month"
    assert "password_hash" not in user and "password" not in user

    assert client.get(f"/api/users/{user['id']}", headers=headers).get_json()["email"] == "dave@example.com"
    assert len(client.get("/api/users", headers=headers).get_json()) == 2

    patched = client.patch(f"/api/users/{user['id']}", headers=headers,
                           json={"role": "admin", "active": False, "rpm": None, "budget_period": "day"})
    assert patched.status_code == 200
    assert patched.get_json()["role"] == "admin" and patched.get_json()["active"] is False
    assert patched.get_json()["rpm"] is None and patched.get_json()["budget_period"] == "day"

    assert client.delete(f"/api/users/{user['id']}", headers=headers).status_code == 204
    assert client.get(f"/api/users/{user['id']}", headers=headers).status_code == 404


def test_duplicate_email_is_409(client, admin, member, auth_headers):
    response = client.post("/api/users", headers=auth_headers(admin),
                           json={"email": "MEMBER@example.com", "password": DEFAULT_PASSWORD})
    assert response.status_code == 409 and "email" in response.get_json()["errors"]


def test_admin_sets_password_with_fresh_token_only(client, admin, member, login):
    tokens = login(admin)
    stale = client.post("/api/auth/refresh", headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    stale_headers = {"Authorization": f"Bearer {stale.get_json()['access_token']}"}
    assert client.patch(f"/api/users/{member.id}", headers=stale_headers,
                        json={"password": "other-Secret-1"}).status_code == 401
    assert client.patch(f"/api/users/{member.id}", headers=stale_headers, json={"rpm": 5}).status_code == 200
    fresh = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.patch(f"/api/users/{member.id}", headers=fresh, json={"password": "other-Secret-1"}).status_code == 200
    login(member, password="other-Secret-1")


def test_last_active_admin_is_protected(client, admin, auth_headers):
    headers = auth_headers(admin)
    for change in ({"role": "member"}, {"active": False}):
        response = client.patch(f"/api/users/{admin.id}", headers=headers, json=change)
        assert response.status_code == 409
    assert client.delete(f"/api/users/{admin.id}", headers=headers).status_code == 409


def test_deactivated_user_token_stops_working(client, admin, member, auth_headers):
    member_headers = auth_headers(member)
    assert client.get("/api/me", headers=member_headers).status_code == 200
    client.patch(f"/api/users/{member.id}", headers=auth_headers(admin), json={"active": False})
    assert client.get("/api/me", headers=member_headers).status_code == 401


def test_missing_user_is_404(client, admin, auth_headers):
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"rpm": 1}} if method == "patch" else {}
        assert getattr(client, method)("/api/users/9999", headers=auth_headers(admin), **kwargs).status_code == 404


@pytest.mark.parametrize("method,body,field", [
    ("post", {"password": DEFAULT_PASSWORD}, "email"),
    ("post", {"email": "x@example.com"}, "password"),
    ("post", {"email": "not-an-email", "password": DEFAULT_PASSWORD}, "email"),
    ("post", {"email": "x@example.com", "password": "short"}, "password"),
    ("post", {"email": "x@example.com", "password": DEFAULT_PASSWORD, "role": "root"}, "role"),
    ("post", {"email": "x@example.com", "password": DEFAULT_PASSWORD, "is_admin": True}, "is_admin"),
    ("post", {"email": "x@example.com", "password": DEFAULT_PASSWORD, "rpm": "10"}, "rpm"),
    ("post", {"email": "x@example.com", "password": DEFAULT_PASSWORD, "rpm": 0}, "rpm"),
    ("post", {"email": "x@example.com", "password": DEFAULT_PASSWORD, "budget_period": "year"}, "budget_period"),
    ("post", {"email": "x" * 300 + "@example.com", "password": DEFAULT_PASSWORD}, "email"),
    ("patch", {"active": "no"}, "active"),
    ("patch", {"active": None}, "active"),
    ("patch", {"role": None}, "role"),
    ("patch", {"budget_usd": -5}, "budget_usd"),
    ("patch", {"budget_usd": 5, "budget_soft_usd": 10}, "budget_soft_usd"),
    ("patch", {"unknown": 1}, "unknown"),
])
def test_bad_input_names_the_field(client, admin, member, auth_headers, method, body, field):
    url = "/api/users" if method == "post" else f"/api/users/{member.id}"
    response = getattr(client, method)(url, headers=auth_headers(admin), json=body)
    assert response.status_code in (400, 422)
    assert field in response.get_json()["errors"], response.get_json()


@pytest.mark.parametrize("method", ["post", "patch"])
def test_non_json_body_is_415(client, admin, member, auth_headers, method):
    url = "/api/users" if method == "post" else f"/api/users/{member.id}"
    response = getattr(client, method)(url, headers=auth_headers(admin), data="role=admin",
                                       content_type="text/plain")
    assert response.status_code == 415 and response.is_json
