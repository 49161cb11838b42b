"""Keys and admin pages through the test client: ownership, roles, forms and their errors."""
from __future__ import annotations

import re

import pytest


def test_member_creates_a_key_and_sees_it_once_with_snippets(app, browser, member):
    browser.sign_in(member)
    response = browser.post("/dashboard/keys", {"name": "notebook", "rpm": "60", "budget_usd": "12.5",
                                                "budget_period": "week"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    plaintext = re.search(r'<code id="new-key">(sk-lg-[^<]+)</code>', page).group(1)
    assert 'OpenAI(base_url="http://localhost/v1", api_key="' + plaintext in page
    assert 'Anthropic(base_url="http://localhost", api_key="' + plaintext in page
    assert "the only time the key is shown" in page
    listing = browser.get("/dashboard/keys").get_data(as_text=True)
    assert "notebook" in listing and plaintext[:12] in listing and plaintext not in listing
    assert "60 req/min" in listing and "$12.50 per week" in listing


def test_bad_limits_are_reported_per_field(browser, member):
    browser.sign_in(member)
    response = browser.post("/dashboard/keys", {"name": "x", "rpm": "lots", "budget_usd": "-3"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "The key was not created." in page
    assert "must be a whole number" in page


def test_revoke_and_edit_own_key(app, browser, member, make_key):
    _, key = make_key(member, name="old")
    browser.sign_in(member)
    response = browser.post(f"/dashboard/keys/{key.id}", {"name": "renamed", "tpm": "1000", "rpm": ""})
    assert response.status_code == 302
    assert "renamed" in browser.get("/dashboard/keys").get_data(as_text=True)
    response = browser.post(f"/dashboard/keys/{key.id}/revoke")
    assert response.status_code == 302
    assert "revoked" in browser.get("/dashboard/keys").get_data(as_text=True)


def test_member_cannot_see_or_touch_another_members_keys(browser, member, make_user, make_key):
    other = make_user("other@example.com")
    _, theirs = make_key(other, name="their-secret-key")
    browser.sign_in(member)
    assert "their-secret-key" not in browser.get("/dashboard/keys").get_data(as_text=True)
    assert browser.get(f"/dashboard/keys/{theirs.id}").status_code == 404
    assert browser.post(f"/dashboard/keys/{theirs.id}/revoke").status_code == 404
    assert browser.post(f"/dashboard/keys/{theirs.id}", {"name": "pwned"}).status_code == 404


@pytest.mark.parametrize("path", ["/dashboard/admin", "/dashboard/admin/users", "/dashboard/admin/keys",
                                  "/dashboard/admin/batches", "/dashboard/admin/users/1"])
def test_admin_pages_are_forbidden_to_members(browser, member, path):
    browser.sign_in(member)
    response = browser.get(path)
    assert response.status_code == 403
    assert "for administrators only" in response.get_data(as_text=True)


def test_admin_posts_are_forbidden_to_members(browser, member, admin):
    browser.sign_in(member)
    assert browser.post("/dashboard/admin/users", {"email": "x@example.com", "password": "pw-Secret-123"}).status_code == 403
    assert browser.post(f"/dashboard/admin/users/{admin.id}", {"role": "member"}).status_code == 403


def test_admin_creates_edits_and_deactivates_users(app, browser, admin):
    browser.sign_in(admin)
    response = browser.post("/dashboard/admin/users", {"email": "new@example.com", "password": "pw-Secret-123",
                                                       "role": "member", "budget_usd": "50"})
    assert response.status_code == 302
    page = browser.get("/dashboard/admin/users").get_data(as_text=True)
    assert "new@example.com" in page and "$50.00 per month" in page
    from llmgate.auth import users

    with app.app_context():
        new_id = users.get_user_by_email(email="new@example.com").id
    response = browser.post(f"/dashboard/admin/users/{new_id}", {"role": "admin", "budget_usd": "", "rpm": "10"})
    assert response.status_code == 302  # "active" unticked: deactivated
    with app.app_context():
        user = users.get_user(user_id=new_id)
        assert user.role == "admin" and not user.active and user.rpm == 10 and user.budget_usd is None


def test_admin_sees_errors_for_duplicate_or_bad_users(browser, admin, member):
    browser.sign_in(admin)
    response = browser.post("/dashboard/admin/users", {"email": member.email, "password": "pw-Secret-123"})
    assert response.status_code == 409
    assert "already exists" in response.get_data(as_text=True)
    response = browser.post("/dashboard/admin/users", {"email": "short@example.com", "password": "x"})
    assert response.status_code == 422
    assert "too short" in response.get_data(as_text=True)


def test_admin_cannot_lock_themselves_out(browser, admin):
    browser.sign_in(admin)
    response = browser.post(f"/dashboard/admin/users/{admin.id}", {"role": "member", "active": "on"})
    assert response.status_code == 422
    assert "cannot remove your own administrator role" in response.get_data(as_text=True)


def test_admin_sees_and_revokes_every_key(browser, admin, member, make_key):
    _, key = make_key(member, name="members-key")
    browser.sign_in(admin)
    page = browser.get("/dashboard/admin/keys").get_data(as_text=True)
    assert "members-key" in page and member.email in page
    assert "members-key" not in browser.get("/dashboard/keys").get_data(as_text=True)  # own keys only
    response = browser.post(f"/dashboard/keys/{key.id}/revoke", {"back": "admin"})
    assert response.headers["Location"] == "/dashboard/admin/keys"
