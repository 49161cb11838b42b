"""Overview, usage and models pages: rendered for admins and members, scoped, time-zone aware."""
from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from llmgate.accounting import ledger


def _events(app, *rows):
    """Write usage straight into the ledger, as the drainer would."""
    events = []
    for user, key, model, ts, tokens, cost, outcome in rows:
        events.append({"event_id": uuid.uuid4().hex, "request_id": "r", "ts": ts.timestamp(), "user_id": user.id,
                       "key_id": key.id if key else None, "model": model, "deployment_id": f"{model}#0",
                       "provider": "openai", "input_tokens": tokens, "output_tokens": tokens // 2,
                       "cost": cost, "outcome": outcome})
    with app.app_context():
        ledger.write_events(events)


@pytest.fixture
def usage(app, member, admin, make_key):
    _, member_key = make_key(member, name="mk")
    _, admin_key = make_key(admin, name="ak")
    now = datetime.now(timezone.utc)
    _events(app,
            (member, member_key, "model-a", now - timedelta(minutes=5), 100, 0.5, "ok"),
            (member, member_key, "model-b", now - timedelta(minutes=5), 10, 0.25, "error"),
            (member, member_key, "model-a", now - timedelta(days=3), 1000, 2.0, "ok"),
            (admin, admin_key, "model-secret", now - timedelta(minutes=5), 7777, 9.0, "ok"))
    return member_key, admin_key


@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard/keys", "/dashboard/usage", "/dashboard/models",
                                  "/dashboard/batches"])
@pytest.mark.parametrize("role", ["admin", "member"])
def test_every_page_renders_for_both_roles(browser, make_user, path, role):
    browser.sign_in(make_user(f"{role}-x@example.com", role=role))
    response = browser.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    page = response.get_data(as_text=True)
    assert ("Admin</a>" in page) == (role == "admin")


@pytest.mark.parametrize("path", ["/dashboard/admin/users", "/dashboard/admin/keys", "/dashboard/admin/batches"])
def test_admin_pages_render_for_admins(browser, admin, path):
    browser.sign_in(admin)
    assert browser.get(path).status_code == 200


def test_overview_shows_the_members_own_numbers(browser, member, usage):
    browser.sign_in(member)
    page = browser.get("/dashboard/?tz=UTC").get_data(as_text=True)
    last_day = page.split("Last 24 hours", 1)[1].split("Last 30 days", 1)[0]
    assert ">2<" in last_day.replace(" ", "")  # two requests in the last day
    assert "$0.75" in last_day and "50.0%" in last_day  # one of two failed
    assert "$2.75" in page  # 30 days
    assert "model-a" in page and "model-b" in page
    assert "model-secret" not in page and "$9.00" not in page
    assert "<svg" in page


def test_admin_overview_can_show_everyone(browser, admin, usage):
    browser.sign_in(admin)
    mine = browser.get("/dashboard/?tz=UTC").get_data(as_text=True)
    assert "model-secret" in mine and "model-a" not in mine
    everyone = browser.get("/dashboard/?tz=UTC&scope=all").get_data(as_text=True)
    assert "model-secret" in everyone and "model-a" in everyone


def test_member_cannot_widen_the_scope(browser, member, usage):
    browser.sign_in(member)
    for path in ("/dashboard/?scope=all", "/dashboard/usage?scope=all&group=model", "/dashboard/usage.csv?scope=all&group=model"):
        assert "model-secret" not in browser.get(path).get_data(as_text=True)


def test_usage_by_model_table_and_csv_match(browser, member, usage):
    browser.sign_in(member)
    page = browser.get("/dashboard/usage?group=model&tz=UTC").get_data(as_text=True)
    assert 'id="usage-table"' in page and "model-a" in page and "Download CSV" in page
    response = browser.get("/dashboard/usage.csv?group=model&tz=UTC&scope=mine")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["model"] for r in rows] == ["model-a", "model-b", "total"]
    assert rows[0]["requests"] == "2" and rows[-1]["requests"] == "3"
    for row in rows[:-1]:  # every row of the CSV is a row of the table
        assert f'>{row["model"]}<' in page


def test_usage_by_key_names_keys_by_prefix(browser, member, usage):
    member_key, _ = usage
    browser.sign_in(member)
    page = browser.get("/dashboard/usage?group=key&tz=UTC").get_data(as_text=True)
    assert member_key.prefix in page


def test_usage_days_follow_the_chosen_time_zone(app, browser, member, make_key):
    _, key = make_key(member)
    # 23:30 UTC on 2 March is already 3 March in Tokyo, still 2 March in New York.
    moment = datetime(2026, 3, 2, 23, 30, tzinfo=timezone.utc)
    _events(app, (member, key, "model-a", moment, 10, 0.1, "ok"))
    browser.sign_in(member)
    for tz, day in (("Asia/Tokyo", "2026-03-03"), ("America/New_York", "2026-03-02"), ("UTC", "2026-03-02")):
        response = browser.get(f"/dashboard/usage.csv?group=day&tz={tz}&start=2026-03-01&end=2026-03-05")
        rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
        assert rows[0]["day"] == day, (tz, rows)
        page = browser.get(f"/dashboard/usage?group=day&tz={tz}&start=2026-03-01&end=2026-03-05").get_data(as_text=True)
        assert f"<option value=\"{tz}\" selected>" in page


def test_usage_explains_bad_parameters(browser, member):
    browser.sign_in(member)
    response = browser.get("/dashboard/usage?tz=Mars/Olympus")
    assert response.status_code == 422
    assert "Unknown time zone." in response.get_data(as_text=True)
    response = browser.get("/dashboard/usage?start=2026-05-01&end=2026-04-01")
    assert response.status_code == 422 and "end must be after start" in response.get_data(as_text=True)


def test_over_budget_is_said_in_words(app, browser, make_user):
    from llmgate.accounting.spend import spend_key
    from llmgate.extensions import get_redis

    user = make_user("spender@example.com", budget_usd=5.0, budget_period="month")
    with app.app_context():
        get_redis().set(spend_key("user", str(user.id), "month"), 6_500_000_000)  # nano-USD
    browser.sign_in(user)
    page = browser.get("/dashboard/").get_data(as_text=True)
    assert "Over budget:" in page and "$6.50 of your $5.00 month budget" in page
