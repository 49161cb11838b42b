"""The dashboard in a real browser, against a real llmgate server talking to a fake upstream."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import DEFAULT_PASSWORD
from tests.dashboard.live import DESKTOP, PHONE, LiveServer, Worker, launch_chromium, shoot
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


# One chunk (a chunk job costs seconds in a forked worker), committed every 2 rows so the bar
# moves within it, and a quick supervisor.
FAST = {"BATCH_CHUNK_ROWS": 50, "BATCH_COMMIT_ROWS": 2, "BATCH_COMMIT_S": 0.05, "BATCH_CONCURRENCY": 2,
        "BATCH_SUPERVISE_S": 0.2, "BATCH_LEASE_TTL_S": 2, "GATEWAY_MAX_RETRIES": 1, "GATEWAY_RELOAD_CHECK_S": 0}


@pytest.fixture
def live(app, app_factory, upstream, tmp_path: Path) -> Iterator[LiveServer]:
    """A server on the test database and Redis (emptied by ``app``), with the fake's models."""
    upstream.reset()
    models = tmp_path / "models.yaml"
    models.write_text(MODELS_YAML.format(openai_base=upstream.openai_base_url, base=upstream.base_url))
    with LiveServer(app_factory(MODELS_FILE=str(models), **FAST)) as server:
        yield server


@pytest.fixture
def worker(live, tmp_path: Path) -> Iterator[Worker]:
    process = Worker(live.app, tmp_path / "worker.log", FAST)
    yield process
    process.stop()


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


def flush_usage(app: Any, calls: int) -> None:
    """What ``llmgate usage flush`` does (move pending usage events into the ledger now), until
    ``calls`` events are in the ledger. A call settles once its answer is sent (``call_on_close``),
    which on the threaded live server can be just after the client has read it, so a single flush
    can run first; the worker's drainer may also be the one that writes them."""
    import time

    from llmgate.accounting import drain
    from llmgate.extensions import db
    from llmgate.models.usage import UsageEvent

    deadline = time.monotonic() + 10
    with app.app_context():
        while True:
            drain.flush()
            count = db.session.query(UsageEvent).count()
            db.session.rollback()
            if count >= calls or time.monotonic() > deadline:
                break
            time.sleep(0.02)
    assert count == calls, f"{count} usage events reached the ledger, expected {calls}"


def test_key_to_sdk_call_to_usage_to_batch_results(chromium, live, worker, upstream, member, tmp_path):
    import csv
    import io

    from openai import OpenAI

    context = chromium.new_context(viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, live.url, member.email)
    page.goto(live.url + "/dashboard/keys")
    page.fill("input[name=name]", "sdk")
    page.click("text=Create key")
    key = page.inner_text("#new-key").strip()

    # The key works with the official SDK against this server, exactly as the snippet says.
    client = OpenAI(base_url=f"{live.url}/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(model="fake-mini", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content

    flush_usage(live.app, calls=1)
    page.goto(live.url + "/dashboard/usage?group=model&tz=UTC")
    table = page.inner_text("#usage-table")
    assert "fake-mini" in table and "total" in table
    with page.expect_download() as usage_download:
        page.click("text=Download CSV")
    usage_rows = list(csv.DictReader(io.StringIO(Path(usage_download.value.path()).read_text())))
    assert [(r["model"], r["requests"]) for r in usage_rows] == [("fake-mini", "1"), ("total", "1")]
    shoot(page, "usage-desktop")
    page.goto(live.url + "/dashboard/?tz=UTC")
    assert "fake-mini" in page.inner_html("main svg")
    shoot(page, "overview-desktop")

    # A batch from a CSV: live preview with a cost estimate, then progress to 100%, then results.
    source = tmp_path / "reviews.csv"
    source.write_text("id,review\n" + "".join(f"{i},review number {i}\n" for i in range(12)))
    upstream.delay_s = 0.2  # slow enough to watch the bar move
    page.goto(live.url + "/dashboard/batches/new")
    page.set_input_files("input[name=file]", str(source))
    page.wait_for_selector("#upload-status:has-text('Uploaded reviews.csv')")  # (no eval: the CSP forbids it)
    page.select_option("select[name=model]", "fake-mini")
    page.fill("textarea[name=template]", "Summarise: {{ review }}")
    page.wait_for_selector("#preview pre")
    preview = page.inner_text("#preview")
    assert "Summarise: review number 0" in preview and "12" in preview and "Cost, at most" in preview
    page.fill("textarea[name=template]", "Summarise: {{ no_such_column }}")
    page.wait_for_selector("#preview .msg-error")
    assert "no_such_column" in page.inner_text("#preview")
    page.fill("textarea[name=template]", "Summarise: {{ review }}")
    page.wait_for_selector("#preview pre")
    shoot(page, "batch-preview-desktop")
    page.click("text=Submit batch")
    page.wait_for_url("**/dashboard/batches")
    assert "submitted: 12 rows on fake-mini" in page.inner_text("main")

    seen = []
    row = page.locator("#batch-table tbody tr").first
    for _ in range(300):
        value = row.locator("progress").get_attribute("value")
        if value is not None:
            seen.append(int(float(value)))
        if "completed" in row.inner_text():
            break
        page.wait_for_timeout(100)
    assert "completed" in row.inner_text(), (row.inner_text(), worker.log_path.read_text()[-3000:])
    assert "12 of 12 rows (100%)" in row.inner_text()
    assert any(v < 12 for v in seen), seen  # the bar was seen before the end, and moved to the end
    shoot(page, "batches-desktop")

    with page.expect_download() as result_download:
        page.click("#batch-table >> text=Download CSV")
    result = list(csv.DictReader(io.StringIO(Path(result_download.value.path()).read_text())))
    assert len(result) == 12
    assert [r["id"] for r in result] == [str(i) for i in range(12)]
    answer_columns = [c for c in result[0] if c not in ("id", "review")]
    assert answer_columns and all(r[answer_columns[0]] for r in result)
    assert not errors, errors
    context.close()

    both_widths(chromium, live.url, member.email, {
        "overview": "/dashboard/?tz=UTC", "usage": "/dashboard/usage?group=model&tz=UTC",
        "batches": "/dashboard/batches", "batch-new": "/dashboard/batches/new",
    })


def test_members_cannot_reach_each_others_batches_in_the_browser(chromium, live, make_user, tmp_path):
    from llmgate.auth import users
    from llmgate.batches import tabular
    from llmgate.dashboard.session import viewer  # noqa: F401  (same principal the pages use)

    owner = make_user("owner@example.com")
    intruder = make_user("intruder@example.com")
    source = tmp_path / "t.csv"
    source.write_text("a\n1\n")
    with live.app.test_request_context():
        from llmgate.auth import principal_cache

        principal = principal_cache.for_user_id(owner.id).usable()
        with source.open("rb") as stream:
            batch = tabular.submit(principal=principal, spec=tabular.Spec.parse({"model": "fake-mini", "template": "{{ a }}"}),
                                   stream=stream, filename="t.csv")
        batch_id = batch.id
        users.get_user(user_id=intruder.id)

    context = chromium.new_context(viewport=DESKTOP)
    page = context.new_page()
    sign_in(page, live.url, intruder.email)
    page.goto(live.url + "/dashboard/batches")
    assert batch_id not in page.content()
    assert page.goto(live.url + f"/dashboard/batches/{batch_id}/progress.json").status == 404
    assert page.goto(live.url + f"/dashboard/batches/{batch_id}/download").status == 404
    token = page.get_attribute("meta[name=csrf-token]", "content") if page.query_selector("meta[name=csrf-token]") else ""
    page.goto(live.url + "/dashboard/batches")
    token = page.get_attribute("meta[name=csrf-token]", "content")
    cancel = page.request.post(live.url + f"/dashboard/batches/{batch_id}/cancel", form={"csrf_token": token},
                               max_redirects=0)
    assert cancel.status == 404
    context.close()
