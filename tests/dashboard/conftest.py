"""Dashboard test helpers: sign a test client in through the real form, read CSRF tokens."""
from __future__ import annotations

import re

import pytest

from tests.conftest import DEFAULT_PASSWORD

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _TOKEN.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


class Browser:
    """A Flask test client that fills in forms the way a browser would (with the page's token)."""

    def __init__(self, client):
        self.client = client
        self.token = ""

    def get(self, path: str, **kwargs):
        response = self.client.get(path, **kwargs)
        if response.mimetype == "text/html" and 'name="csrf_token"' in response.get_data(as_text=True):
            self.token = csrf_from(response.get_data(as_text=True))
        return response

    def post(self, path: str, data: dict | None = None, *, csrf: bool = True, **kwargs):
        data = dict(data or {})
        if csrf:
            if not self.token:
                self.get("/dashboard/login")
            data.setdefault("csrf_token", self.token)
        response = self.client.post(path, data=data, **kwargs)
        if response.mimetype == "text/html" and 'name="csrf_token"' in response.get_data(as_text=True):
            self.token = csrf_from(response.get_data(as_text=True))
        return response

    def sign_in(self, user, password: str = DEFAULT_PASSWORD):
        self.get("/dashboard/login")
        response = self.post("/dashboard/login", {"email": user.email, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)
        self.get("/dashboard/")  # the token rotates on sign-in: pick up the new one
        return response


@pytest.fixture
def browser(app):
    """``browser.sign_in(user)``, ``browser.get(path)``, ``browser.post(path, data)``."""
    return Browser(app.test_client())


@pytest.fixture
def browser_factory(app):
    return lambda: Browser(app.test_client())
