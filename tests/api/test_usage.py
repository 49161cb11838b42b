"""/api/usage: who sees what, the three formats, parameter errors, and /api/usage/limits."""
from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import pandas as pd
import pyarrow.parquet as pq
import pytest

from llmgate.accounting import gate, ledger
from llmgate.auth.principal import Budget, Limits
from llmgate.providers.base import Price, Usage
from tests.accounting.conftest import make_deployment, make_event, make_principal

WHEN = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
RANGE = {"start": "2026-03-01", "end": "2026-03-03"}


@pytest.fixture
def usage(app, admin, member, make_key):
    _, member_key = make_key(member)
    _, admin_key = make_key(admin)
    with app.app_context():
        ledger.write_events(
            [make_event(WHEN, user_id=member.id, key_id=member_key.id, model="a", cost="0.25") for _ in range(3)]
            + [make_event(WHEN, user_id=admin.id, key_id=admin_key.id, model="b", cost="1.5") for _ in range(2)])
    return member_key, admin_key


def test_member_sees_only_own_usage(client, member, admin, auth_headers, usage):
    body = client.get("/api/usage", query_string={**RANGE, "group_by": "user,model"},
                      headers=auth_headers(member)).get_json()
    assert body["totals"]["requests"] == 3 and body["totals"]["cost_usd"] == 0.75
    assert [(r["user"], r["user_email"], r["model"]) for r in body["rows"]] == [(member.id, member.email, "a")]
    refused = client.get("/api/usage", query_string={**RANGE, "user_id": admin.id}, headers=auth_headers(member))
    assert refused.status_code == 403


def test_member_can_use_an_api_key(client, member, make_key, usage):
    plaintext, _ = make_key(member)
    body = client.get("/api/usage", query_string=RANGE, headers={"Authorization": f"Bearer {plaintext}"}).get_json()
    assert body["totals"]["requests"] == 3


def test_admin_sees_all_and_filters(client, admin, member, auth_headers, usage):
    member_key, _ = usage
    everything = client.get("/api/usage", query_string={**RANGE, "group_by": "key"}, headers=auth_headers(admin))
    assert everything.get_json()["totals"]["requests"] == 5
    assert {r["key_prefix"] for r in everything.get_json()["rows"]} == {k.prefix for k in usage}
    one = client.get("/api/usage", query_string={**RANGE, "user_id": member.id}, headers=auth_headers(admin))
    assert one.get_json()["totals"]["requests"] == 3
    by_key = client.get("/api/usage", query_string={**RANGE, "key_id": member_key.id}, headers=auth_headers(admin))
    assert by_key.get_json()["totals"]["requests"] == 3


def test_anonymous_is_401(client):
    assert client.get("/api/usage").status_code == 401
    assert client.get("/api/usage/limits").status_code == 401


def test_csv_and_parquet_parse_back_to_the_same_numbers(client, admin, auth_headers, usage):
    query = {**RANGE, "group_by": "day,model", "tz": "Europe/Paris"}
    as_json = client.get("/api/usage", query_string=query, headers=auth_headers(admin)).get_json()
    csv = client.get("/api/usage", query_string={**query, "format": "csv"}, headers=auth_headers(admin))
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    frame = pd.read_csv(io.StringIO(csv.get_data(as_text=True)))
    total = frame[frame["day"] == "total"].iloc[0]
    rows = frame[frame["day"] != "total"]
    assert list(rows["model"]) == [r["model"] for r in as_json["rows"]]
    assert list(rows["requests"]) == [r["requests"] for r in as_json["rows"]]
    assert total["requests"] == as_json["totals"]["requests"] == 5
    assert total["cost_usd"] == pytest.approx(as_json["totals"]["cost_usd"]) == 3.75
    parquet = client.get("/api/usage", query_string={**query, "format": "parquet"}, headers=auth_headers(admin))
    table = pq.read_table(io.BytesIO(parquet.get_data()))
    assert table.column("requests").to_pylist() == [r["requests"] for r in as_json["rows"]]
    assert table.column("cost_usd").to_pylist() == pytest.approx([r["cost_usd"] for r in as_json["rows"]])
    assert json.loads(table.schema.metadata[b"llmgate"])["totals"] == as_json["totals"]


@pytest.mark.parametrize(("params", "field"), [
    ({"group_by": "week"}, "group_by"), ({"tz": "Nowhere/Land"}, "tz"),
    ({"start": "2026-03-05", "end": "2026-03-01"}, "end"), ({"format": "xlsx"}, "format"),
    ({"start": "soon"}, "start"), ({"key_id": "x"}, "key_id"),
])
def test_bad_parameters_are_422_naming_the_field(client, member, auth_headers, params, field):
    response = client.get("/api/usage", query_string={**RANGE, **params}, headers=auth_headers(member))
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_limits_shows_budget_left(app, client, member, make_key):
    plaintext, key = make_key(member, rpm=60, budget_usd=1.0, budget_period="month")
    principal = make_principal(user_id=member.id, key_id=key.id, key_limits=Limits(rpm=60),
                               key_budget=Budget(1.0, "month"))
    with app.app_context():
        admission = gate.admit(principal=principal, deployment=make_deployment(price=Price(100.0, 100.0)),
                               estimated_tokens=10, attempt=0)
        gate.settle(admission, usage=Usage(1000, 1000), outcome="ok", error_kind=None, latency_ms=1.0,
                    ttft_ms=None, request_id="r")  # $0.20
    body = client.get("/api/usage/limits", headers={"Authorization": f"Bearer {plaintext}"}).get_json()
    assert body["key"]["limits"]["rpm"] == 60
    assert body["key"]["budget"]["remaining_usd"] == pytest.approx(0.8)
    assert body["key"]["spent_usd"]["total"] == pytest.approx(0.2)
    assert body["user"]["budget"] is None and body["user"]["spent_usd"]["day"] == pytest.approx(0.2)
