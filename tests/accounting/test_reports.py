"""Reports add up to the calls made: by day in a zone with DST changes, by hour, after a prune."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from llmgate.accounting import ledger, reports
from llmgate.errors import ValidationError

from .conftest import make_event


def _hourly_events(start: datetime, hours: int, **fields):
    return [make_event(start + timedelta(hours=h, minutes=17), input_tokens=10, output_tokens=1, cost="0.5",
                       **fields) for h in range(hours)]


def _report(**kwargs):
    return reports.build_report(reports.parse_query(**kwargs))


@pytest.mark.parametrize(("day", "hours"), [("2026-03-29", 23), ("2026-10-25", 25)])
def test_paris_days_follow_dst(ctx, day, hours):
    # One call in every UTC hour from three days before to three days after the change.
    start = datetime.fromisoformat(day).replace(tzinfo=timezone.utc) - timedelta(days=3)
    events = _hourly_events(start, 24 * 6)
    ledger.write_events(events)
    before = (datetime.fromisoformat(day) - timedelta(days=1)).date().isoformat()
    after = (datetime.fromisoformat(day) + timedelta(days=1)).date().isoformat()
    report = _report(start=before, end=after, tz="Europe/Paris", group_by="day")
    per_day = dict(zip(report.rows["day"], report.rows["requests"]))
    assert per_day == {before: 24, day: hours, after: 24}
    assert report.totals["requests"] == 48 + hours
    assert report.totals["cost_usd"] == pytest.approx(0.5 * (48 + hours))
    by_hour = _report(start=day, end=day, tz="Europe/Paris", group_by="hour")
    assert len(by_hour.rows) == hours  # the repeated or skipped local hour is its own bucket (or none)
    assert by_hour.rows["hour"].iloc[0] == f"{day}T00:00:00+0{1 if day.endswith('29') else 2}:00"


def test_totals_equal_the_calls_and_survive_a_prune(ctx):
    base = datetime(2026, 1, 5, tzinfo=timezone.utc)
    events = (_hourly_events(base, 30, model="a", user_id=1) + _hourly_events(base, 10, model="b", user_id=2)
              + [make_event(base, model="b", user_id=2, key_id=None, cost=None, outcome="error")])
    ledger.write_events(events)
    query = dict(start="2026-01-01", end="2026-01-31", tz="UTC", group_by="model,user,key")
    first = _report(**query)
    assert first.totals == {"requests": 41, "errors": 1, "input_tokens": 400 + 100, "output_tokens": 40 + 50,
                            "cached_tokens": 0, "cost_usd": 20.0, "cost_unknown": 1}
    rows = first.rows.set_index(["model", "user"])
    assert rows.loc[("a", 1), "requests"].sum() == 30
    jwt_row = first.rows[first.rows["key"].isna()]
    assert list(jwt_row["cost_unknown"]) == [1]
    ledger.prune(older_than=timedelta(days=1), now=datetime(2026, 3, 1, tzinfo=timezone.utc))
    after = _report(**query)
    assert after.totals == first.totals
    assert after.rows.equals(first.rows)


def test_utc_days_from_daily_rollup_match_hourly(ctx):
    events = _hourly_events(datetime(2026, 5, 1, 5, tzinfo=timezone.utc), 60)
    ledger.write_events(events)
    daily = _report(start="2026-05-01", end="2026-05-03", tz="UTC", group_by="day")
    hourly = _report(start="2026-05-01T00:00:00", end="2026-05-04T00:00:00", tz="UTC", group_by="day,hour")
    assert dict(zip(daily.rows["day"], daily.rows["requests"])) == hourly.rows.groupby("day")["requests"].sum().to_dict()
    assert daily.totals == hourly.totals


def test_filters_by_user_key_model(ctx):
    when = datetime(2026, 2, 2, 10, tzinfo=timezone.utc)
    ledger.write_events([make_event(when, user_id=1, key_id=5, model="a"), make_event(when, user_id=2, key_id=6),
                         make_event(when, user_id=1, key_id=7, model="b")])
    assert _report(start="2026-02-01", end="2026-02-03", user_id=1).totals["requests"] == 2
    assert _report(start="2026-02-01", end="2026-02-03", key_id=6).totals["requests"] == 1
    assert _report(start="2026-02-01", end="2026-02-03", model="b").totals["requests"] == 1


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"group_by": "day,week"}, "group_by"),
    ({"tz": "Mars/Olympus"}, "tz"),
    ({"start": "2026-02-10", "end": "2026-02-01"}, "end"),
    ({"start": "yesterday"}, "start"),
])
def test_bad_parameters_name_the_field(kwargs, field):
    with pytest.raises(ValidationError) as error:
        reports.parse_query(**{"start": "2026-02-01", "end": "2026-02-05", **kwargs})
    assert field in error.value.details


def test_parse_since():
    assert reports.parse_since("7d") == timedelta(days=7)
    with pytest.raises(ValidationError):
        reports.parse_since("7 days")
