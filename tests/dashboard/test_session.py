"""Sign-in, sign-out, the session cookie, idle expiry and CSRF on the dashboard."""
from __future__ import annotations

import time

from llmgate.dashboard import session as dashboard_session


def test_pages_redirect_to_sign_in_when_signed_out(client):
    response = client.get("/dashboard/keys")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/dashboard/login?next=/dashboard/keys")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Please sign in to continue." in page


def test_sign_in_sets_a_hardened_session_cookie(browser, member):
    browser.get("/dashboard/login")
    response = browser.post("/dashboard/login", {"email": member.email, "password": "pw-Secret-123"})
    assert response.status_code == 302 and response.headers["Location"] == "/dashboard/"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("llmgate_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http in tests
    page = browser.get("/dashboard/").get_data(as_text=True)
    assert member.email in page and "Sign out" in page


def test_the_v1_api_never_opens_a_session(app, browser, member):
    # Signed in, the same client calls /v1: no session is read or written for it.
    browser.get("/dashboard/login")
    browser.post("/dashboard/login", {"email": member.email, "password": "pw-Secret-123"})
    interface = app.session_interface
    with app.test_request_context("/v1/models"):
        from flask import request
        assert interface.is_null_session(interface.open_session(app, request))
    response = browser.client.get("/v1/models")
    assert response.status_code == 401 and "Set-Cookie" not in response.headers
    assert member.email in browser.get("/dashboard/").get_data(as_text=True)  # the session is intact


def test_cookie_is_secure_over_https_and_in_production(app_factory, migrated, make_user):
    user = make_user("secure@example.com")
    for app, base in ((app_factory(), "https://localhost"), (app_factory(SESSION_COOKIE_SECURE=True), "http://localhost")):
        client = app.test_client()
        page = client.get("/dashboard/login", base_url=base).get_data(as_text=True)
        from tests.dashboard.conftest import csrf_from

        response = client.post("/dashboard/login", base_url=base, data={
            "email": user.email, "password": "pw-Secret-123", "csrf_token": csrf_from(page)})
        assert response.status_code == 302
        assert "; Secure" in response.headers["Set-Cookie"]


def test_wrong_password_shows_one_clear_message(browser, member):
    browser.get("/dashboard/login")
    response = browser.post("/dashboard/login", {"email": member.email, "password": "wrong-password"})
    assert response.status_code == 401
    assert "Invalid email or password." in response.get_data(as_text=True)


def test_deactivated_user_cannot_sign_in(browser, make_user):
    user = make_user("gone@example.com", active=False)
    browser.get("/dashboard/login")
    response = browser.post("/dashboard/login", {"email": user.email, "password": "pw-Secret-123"})
    assert response.status_code == 401


def test_login_rate_limit_is_respected(app_factory, make_user):
    app = app_factory(AUTH_LOGIN_ACCOUNT_MAX_FAILURES=2)
    from tests.dashboard.conftest import Browser

    user = make_user("target@example.com")
    browser = Browser(app.test_client())
    browser.get("/dashboard/login")
    for _ in range(2):
        assert browser.post("/dashboard/login", {"email": user.email, "password": "nope-nope"}).status_code == 401
    response = browser.post("/dashboard/login", {"email": user.email, "password": "pw-Secret-123"})
    assert response.status_code == 429
    assert "Too many login attempts" in response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0


def test_sign_in_only_redirects_inside_the_dashboard(browser, member):
    browser.get("/dashboard/login")
    response = browser.post("/dashboard/login?next=//evil.example/x", {"email": member.email, "password": "pw-Secret-123"})
    assert response.headers["Location"] == "/dashboard/"
    # Already signed in: the sign-in page forwards to a safe ``next``.
    assert browser.get("/dashboard/login?next=/dashboard/models").headers["Location"] == "/dashboard/models"


def test_sign_out_ends_the_session(browser, member):
    browser.sign_in(member)
    response = browser.post("/dashboard/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/dashboard/login"
    assert browser.get("/dashboard/keys").status_code == 302


def test_post_without_csrf_token_is_refused(browser, member):
    browser.sign_in(member)
    for path in ("/dashboard/keys", "/dashboard/logout"):
        response = browser.post(path, {"name": "x"}, csrf=False)
        assert response.status_code == 400
        assert "CSRF token missing or wrong" in response.get_data(as_text=True)
    response = browser.post("/dashboard/keys", {"name": "x", "csrf_token": "forged"})
    assert response.status_code == 400
    assert browser.get("/dashboard/keys").status_code == 200  # refused, but still signed in


def test_sign_in_form_needs_csrf_too(client, member):
    client.get("/dashboard/login")
    response = client.post("/dashboard/login", data={"email": member.email, "password": "pw-Secret-123"})
    assert response.status_code == 400


def test_csrf_token_rotates_on_sign_in(browser, member):
    browser.get("/dashboard/login")
    before = browser.token
    browser.sign_in(member)
    assert browser.token and browser.token != before


def test_idle_session_expires_with_a_clear_message(app_factory, make_user):
    from tests.dashboard.conftest import Browser

    app = app_factory(DASHBOARD_IDLE_TIMEOUT_S=60)
    user = make_user("idle@example.com")
    browser = Browser(app.test_client())
    browser.sign_in(user)
    with browser.client.session_transaction() as sess:
        sess[dashboard_session.LAST_SEEN] = time.time() - 61
    response = browser.get("/dashboard/keys")
    assert response.status_code == 302 and "/dashboard/login" in response.headers["Location"]
    page = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your session expired after 1 minutes without activity" in page
    assert browser.get("/dashboard/keys").status_code == 302  # and it stays ended


def test_activity_keeps_the_session_alive(app_factory, make_user):
    from tests.dashboard.conftest import Browser

    app = app_factory(DASHBOARD_IDLE_TIMEOUT_S=60)
    user = make_user("busy@example.com")
    browser = Browser(app.test_client())
    browser.sign_in(user)
    with browser.client.session_transaction() as sess:
        sess[dashboard_session.LAST_SEEN] = time.time() - 50
    assert browser.get("/dashboard/keys").status_code == 200
    with browser.client.session_transaction() as sess:
        assert time.time() - sess[dashboard_session.LAST_SEEN] < 5


def test_expired_session_answers_json_callers_with_401(app_factory, make_user):
    from tests.dashboard.conftest import Browser

    app = app_factory(DASHBOARD_IDLE_TIMEOUT_S=60)
    user = make_user("json@example.com")
    browser = Browser(app.test_client())
    browser.sign_in(user)
    with browser.client.session_transaction() as sess:
        sess[dashboard_session.LAST_SEEN] = time.time() - 61
    response = browser.client.get("/dashboard/keys", headers={"X-Requested-With": "fetch"})
    assert response.status_code == 401
    assert "expired" in response.get_json()["message"]


def test_deactivation_ends_an_open_session(app, browser, member):
    from llmgate.auth import users

    browser.sign_in(member)
    with app.app_context():
        users.deactivate_user(user=users.get_user(user_id=member.id))
    response = browser.get("/dashboard/keys")
    assert response.status_code == 302
    assert "has been deactivated" in browser.get(response.headers["Location"]).get_data(as_text=True)


def test_password_change_ends_other_sessions(app, browser, member):
    from llmgate.auth import users

    browser.sign_in(member)
    time.sleep(1.1)
    with app.app_context():
        users.change_password(user=users.get_user(user_id=member.id), password="another-Secret-456")
    response = browser.get("/dashboard/keys")
    assert response.status_code == 302
    assert "password was changed" in browser.get(response.headers["Location"]).get_data(as_text=True)


def test_pages_send_security_headers(browser, member):
    browser.sign_in(member)
    response = browser.get("/dashboard/keys")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
