"""The dashboard in a real browser, against a real llmgate server talking to a fake upstream."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import DEFAULT_PASSWORD
from tests.dashboard.live import DESKTOP, PHONE, LiveServer, launch_chromium, shoot
from tests.fakes.upstream import FakeUpstream

pytestmark = pytest.mark.once

MODELS_YAML = """
models:
  - name: fake-mini
    provider: openai
    model: upstream-mini
    api_base: {openai_base}
    api_key: sk-test
    price: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}
    limits: {{rpm: 600, max_concurrency: 8}}
  - name: fake-claude
    provider: anthropic
    model: upstream-claude
    api_base: {base}
    api_key: sk-test
    price: {{input_per_mtok: 3.0, output_per_mtok: 15.0}}
"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def live(app, app_factory, upstream, tmp_path: Path) -> Iterator[LiveServer]:
    """A server on the test database and Redis (emptied by ``app``), with the fake's models."""
    models = tmp_path / "models.yaml"
    models.write_text(MODELS_YAML.format(openai_base=upstream.openai_base_url, base=upstream.base_url))
    with LiveServer(app_factory(MODELS_FILE=str(models))) as server:
        yield server


def sign_in(page: Any, base: str, email: str, password: str = DEFAULT_PASSWORD) -> None:
    page.goto(base + "/dashboard/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/dashboard/(\?.*)?$"))


def both_widths(chromium: Any, base: str, email: str, paths: dict[str, str]) -> None:
    """Screenshot each page at desktop and phone width, checking nothing overflows sideways."""
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        context = chromium.new_context(viewport=size)
        page = context.new_page()
        sign_in(page, base, email)
        for name, path in paths.items():
            page.goto(base + path)
            shoot(page, f"{name}-{label}")
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 1, f"{path} scrolls sideways by {overflow}px at {label} width"
        context.close()


def test_keys_models_and_admin_in_the_browser(chromium, live, make_user, member):
    admin = make_user("root@example.com", role="admin")
    context = chromium.new_context(viewport=DESKTOP)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))  # uncaught script errors

    page.goto(live.url + "/dashboard/keys")
    assert "/dashboard/login" in page.url
    assert "Please sign in to continue." in page.inner_text("main")
    shoot(page, "signin-desktop")
    page.fill("input[name=email]", admin.email)
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    assert "Invalid email or password." in page.inner_text("main")
    page.fill("input[name=password]", DEFAULT_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/keys")

    cookie = next(c for c in context.cookies() if c["name"] == "llmgate_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    # Create a key: shown once, with SDK snippets pointing at this server.
    page.fill("input[name=name]", "browser-key")
    page.select_option("select[name=models]", ["fake-mini"])
    page.fill("input[name=rpm]", "120")
    page.click("text=Create key")
    plaintext = page.inner_text("#new-key").strip()
    assert plaintext.startswith("sk-lg-")
    snippet = page.inner_text("#snippet-openai")
    assert f'base_url="{live.url}/v1"' in snippet and plaintext in snippet and 'model="fake-mini"' in snippet
    assert f'base_url="{live.url}"' in page.inner_text("#snippet-anthropic")
    shoot(page, "key-created-desktop")
    page.click("text=Back to your keys")
    assert "browser-key" in page.inner_text("table") and "120 req/min" in page.inner_text("table")
    assert plaintext not in page.content()

    # Models: every deployment with provider, price and state in words.
    page.goto(live.url + "/dashboard/models")
    table = page.inner_text("table")
    assert "fake-mini" in table and "fake-claude" in table and "anthropic" in table and "15.00" in table
    assert "healthy" in table

    # A forged POST (the browser's session cookie, but no CSRF token) is refused.
    forged = page.request.post(live.url + "/dashboard/keys", form={"name": "forged"}, max_redirects=0)
    assert forged.status == 400 and "CSRF token missing or wrong" in forged.text()
    page.goto(live.url + "/dashboard/keys")
    assert "forged" not in page.inner_text("main")

    # Admin: create a user from the form.
    page.goto(live.url + "/dashboard/admin/users")
    page.fill("input[name=email]", "made-in-browser@example.com")
    page.fill("input[name=password]", "pw-Secret-789")
    page.click("text=Create user")
    assert "User made-in-browser@example.com created as member." in page.inner_text("main")
    page.click("button:has-text('Sign out')")
    page.wait_for_url("**/dashboard/login")
    assert "You are signed out." in page.inner_text("main")
    assert not errors, errors
    context.close()

    # A member is refused the admin pages.
    context = chromium.new_context(viewport=DESKTOP)
    page = context.new_page()
    sign_in(page, live.url, member.email)
    response = page.goto(live.url + "/dashboard/admin/users")
    assert response.status == 403 and "for administrators only" in page.inner_text("main")
    assert "Admin" not in page.inner_text("header nav")
    context.close()

    both_widths(chromium, live.url, admin.email, {
        "keys": "/dashboard/keys", "models": "/dashboard/models", "admin-users": "/dashboard/admin/users",
        "admin-keys": "/dashboard/admin/keys",
    })
