"""The drain: events go from Redis to the ledger once — through crashes, replays and DB outages."""
from __future__ import annotations

import json
import multiprocessing
import random
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from llmgate.accounting import drain, gate, ledger
from llmgate.extensions import db, get_redis
from llmgate.models.usage import UsageDaily, UsageEvent, UsageHourly
from llmgate.providers.base import Price, Usage

from .conftest import make_deployment, make_event, make_principal


def _send(events):
    r = get_redis()
    pipe = r.pipeline(transaction=False)
    for event in events:
        pipe.xadd(gate.STREAM_KEY, {"e": json.dumps(event)})
    pipe.execute()


def _events(n, *, start=datetime(2026, 3, 28, 20, tzinfo=timezone.utc)):
    rng = random.Random(n)
    return [make_event(start + timedelta(minutes=7 * i), user_id=1 + i % 3, key_id=None if i % 5 == 0 else 10 + i % 4,
                       model=("a", "b")[i % 2], input_tokens=rng.randint(1, 900), output_tokens=rng.randint(0, 300),
                       cost=None if i % 11 == 0 else f"{rng.randint(1, 99999) / 1e6:.6f}",
                       outcome="error" if i % 13 == 0 else "ok") for i in range(n)]


def _assert_ledger_matches(events):
    rows = db.session.execute(sa.select(UsageEvent.event_id)).scalars().all()
    assert Counter(rows) == Counter(e["event_id"] for e in events)  # each exactly once
    expected = {
        "requests": len(events), "errors": sum(e["outcome"] == "error" for e in events),
        "input_tokens": sum(e["input_tokens"] for e in events), "output_tokens": sum(e["output_tokens"] for e in events),
        "cost_usd": sum(Decimal(e["cost"]) for e in events if e["cost"] is not None),
        "cost_unknown": sum(e["cost"] is None for e in events),
    }
    for model in (UsageHourly, UsageDaily):
        got = db.session.execute(sa.select(*(sa.func.sum(getattr(model, k)) for k in expected))).one()
        got = dict(zip(expected, got))
        assert abs(Decimal(str(got.pop("cost_usd"))) - expected["cost_usd"]) < Decimal("0.000001")
        assert got == {k: v for k, v in expected.items() if k != "cost_usd"}, model.__tablename__


def test_settled_events_reach_the_ledger_and_rollups(ctx):
    p = make_principal()
    for usage in (Usage(100, 50, 10), Usage(7, 3)):
        a = gate.admit(principal=p, deployment=make_deployment(price=Price(1.0, 2.0)), estimated_tokens=5, attempt=0)
        gate.settle(a, usage=usage, outcome="ok", error_kind=None, latency_ms=4.5, ttft_ms=1.25, request_id="rq",
                    batch_id="batch_1")
    unknown = gate.admit(principal=p, deployment=make_deployment("free", price=None), estimated_tokens=5, attempt=0)
    gate.settle(unknown, usage=Usage(1, 1), outcome="error", error_kind="timeout", latency_ms=9.0, ttft_ms=None,
                request_id="rq2")
    assert drain.flush() == 3 and drain.pending() == 0
    rows = {r.model: r for r in db.session.execute(sa.select(UsageEvent)).scalars()}
    assert rows["free"].cost_usd is None and rows["free"].error_kind == "timeout"
    assert rows["gpt-test"].batch_id == "batch_1" and rows["gpt-test"].ts.tzinfo is not None
    hourly = {r.model: r for r in db.session.execute(sa.select(UsageHourly)).scalars()}
    assert hourly["gpt-test"].requests == 2 and hourly["gpt-test"].cached_tokens == 10
    assert float(hourly["gpt-test"].cost_usd) == pytest.approx((107 * 1 + 53 * 2) / 1e6)
    assert (hourly["free"].cost_unknown, hourly["free"].errors, float(hourly["free"].cost_usd)) == (1, 1, 0.0)


def test_replayed_events_are_not_counted_twice(ctx):
    events = _events(40)
    _send(events)
    assert drain.flush() == 40
    _send(events[:25])  # as if a drainer had died between COMMIT and XACK
    assert ledger.write_events(events[10:30] + events[10:12]) == 0
    assert drain.flush() == 0
    _assert_ledger_matches(events)


def _drain_forever(app, count):
    # A forked child: forget the parent's DB connections (never share a socket), then drain.
    with app.app_context():
        db.engine.dispose(close=False)
        consumer = drain.consumer_name()
        while True:
            drain.drain_batch(consumer=consumer, count=count, block_ms=100, reclaim_idle_ms=0)


@pytest.mark.once
def test_writer_killed_at_random_points_loses_and_doubles_nothing(ctx):
    events = _events(3000)
    _send(events)
    db.session.remove()
    rng = random.Random(7)
    fork = multiprocessing.get_context("fork")
    interrupted = 0
    for _ in range(6):
        before = drain.pending()
        proc = fork.Process(target=_drain_forever, args=(ctx, rng.choice([7, 25, 60])))
        proc.start()
        # Kill once this writer has committed something, a random moment later: timing by
        # progress, not by the clock, so a fast or a loaded machine both land the kill mid-drain.
        deadline = time.monotonic() + 20
        while drain.pending() == before and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.02))
        proc.kill()  # SIGKILL: no cleanup, mid-transaction or between COMMIT and XACK
        proc.join()
        interrupted += 0 < drain.pending() < before
    db.session.remove()
    assert interrupted >= 3  # most kills really interrupted a drain in progress
    drain.flush()
    assert drain.pending() == 0
    _assert_ledger_matches(events)


def test_database_down_keeps_events_in_redis_until_it_returns(ctx, app_factory, instance_dir):
    dead = app_factory(SQLALCHEMY_DATABASE_URI=(
        "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=1"
        if db.engine.dialect.name == "postgresql" else f"sqlite:///{instance_dir}/missing/dir/x.db"))
    events = _events(30)
    with dead.app_context():
        # /v1 traffic does not need the database: admit and settle still work
        a = gate.admit(principal=make_principal(), deployment=make_deployment(), estimated_tokens=1, attempt=0)
        gate.settle(a, usage=Usage(1, 1), outcome="ok", error_kind=None, latency_ms=1.0, ttft_ms=None,
                    request_id="r")
        _send(events)
        with pytest.raises(sa.exc.OperationalError):
            drain.drain_batch(consumer="dead-db", count=10)
        stop = threading.Event()
        loop = threading.Thread(target=drain.drain_loop, args=(dead, stop))
        loop.start()
        time.sleep(0.8)
        stop.set()
        loop.join(5)
        assert not loop.is_alive()
        assert drain.pending() == 31
    assert drain.flush() == 31  # the database is back (the real app): everything is written
    assert drain.pending() == 0
    db.session.remove()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(UsageEvent)) == 31


def test_prune_drops_raw_rows_but_keeps_rollup_totals(ctx):
    events = _events(50, start=datetime(2026, 1, 1, tzinfo=timezone.utc))
    ledger.write_events(events)
    deleted = ledger.prune(older_than=timedelta(days=90), now=datetime(2026, 4, 1, 3, tzinfo=timezone.utc))
    assert 0 < deleted < 50
    remaining = db.session.scalar(sa.select(sa.func.count()).select_from(UsageEvent))
    assert remaining == 50 - deleted
    total = db.session.scalar(sa.select(sa.func.sum(UsageHourly.requests)))
    assert total == 50
