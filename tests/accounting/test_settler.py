"""Settles handed to the process's Settler: carried by the next admit, or flushed in the background."""
from __future__ import annotations

import json
import os
import time

import pytest

from llmgate import metrics
from llmgate.accounting import gate, spend
from llmgate.accounting.settler import SETTLER_KEY
from llmgate.auth.principal import Budget, Limits
from llmgate.errors import RateLimited
from llmgate.extensions import get_redis
from llmgate.providers.base import Usage

from .conftest import NOON, make_deployment, make_principal


def _admit(principal, *, tokens=10, now=NOON):
    return gate.admit(principal=principal, deployment=make_deployment(), estimated_tokens=tokens, attempt=0, now=now)


def _settle_later(admission, usage=Usage(10, 5)):
    gate.settle(admission, usage=usage, outcome="ok", error_kind=None, latency_ms=3.0, ttft_ms=None,
                request_id="req-later", later=True)


def _event_ids():
    return [json.loads(fields[b"e"])["event_id"] for _, fields in get_redis().xrange(gate.STREAM_KEY)]


def _wait_idle(app, timeout=5.0):
    settler = app.extensions[SETTLER_KEY]
    deadline = time.monotonic() + timeout
    while not settler.idle():
        assert time.monotonic() < deadline, "the settler never sent its settles"
        time.sleep(0.005)


def _without_flusher(app):
    """A settler whose flusher never starts in this process: only admits (or send_now) send."""
    settler = gate.settler_for(app)
    settler._pid = os.getpid()
    return settler


def test_the_next_admit_carries_pending_settles_first(ctx):
    # One concurrency slot: the second call is admitted only because the first one's settle,
    # pending in this process, goes to Redis ahead of the second admit, in its round trip.
    settler = _without_flusher(ctx)
    p = make_principal(key_limits=Limits(max_concurrency=1))
    ids = []
    for _ in range(5):
        admission = _admit(p)
        ids.append(admission.id)
        _settle_later(admission)
        assert not settler.idle()
    assert _event_ids() == ids[:-1]  # each settle rode with the next admit; the last one waits
    settler.send_now()
    assert _event_ids() == ids
    assert get_redis().zcard("llmgate:rl:key:10:c") == 0


def test_sequential_calls_never_trip_their_own_slot(ctx):
    # With the flusher running, whichever sends a settle first (it or the next admit), a caller's
    # next call always finds its previous slot released.
    p = make_principal(key_limits=Limits(max_concurrency=1))
    for _ in range(30):
        _settle_later(_admit(p))
    _wait_idle(ctx)
    assert get_redis().zcard("llmgate:rl:key:10:c") == 0
    assert len(_event_ids()) == 30


def test_the_flusher_sends_a_settle_when_no_admit_comes(ctx):
    p = make_principal(key_limits=Limits(rpm=100, tpm=10_000, max_concurrency=5),
                       key_budget=Budget(limit_usd=10.0, period="day"))
    admission = _admit(p, tokens=500)
    _settle_later(admission, Usage(80, 20))
    _wait_idle(ctx)
    r = get_redis()
    assert _event_ids() == [admission.id]
    assert r.zcard("llmgate:rl:key:10:c") == 0
    assert int(r.get("llmgate:rl:key:10:s")) == 100  # the reservation corrected to the real count
    spent = r.get(spend.spend_key("key", "10", "day", NOON))
    assert int(spent) == 80 * 1_000 + 20 * 2_000  # $1 and $2 per million tokens, in nano-USD
    # the settle's follow-up ran in the flusher too: the budget gauge moved
    gauge = metrics.BUDGET_REMAINING.labels(scope="key", owner="10", period="day")._value.get()
    assert gauge == pytest.approx(10.0 - 0.00012)


def test_settles_survive_a_script_flush(ctx):
    # Redis restarted (or SCRIPT FLUSH): the pipeline's EVALSHAs answer NOSCRIPT, are loaded, rerun.
    settler = _without_flusher(ctx)
    p = make_principal(key_limits=Limits(max_concurrency=1))
    first = _admit(p)
    _settle_later(first)
    get_redis().script_flush()
    second = _admit(p)  # carries the settle: both EVALSHAs fail with NOSCRIPT, are loaded, rerun
    assert _event_ids() == [first.id]
    _settle_later(second)
    get_redis().script_flush()
    settler.send_now()
    assert _event_ids() == [first.id, second.id]
    assert get_redis().zcard("llmgate:rl:key:10:c") == 0


def test_a_settle_unknown_to_redis_still_goes_before_the_admit_it_rides_with(ctx):
    # Redis knows admit but not settle (first settle since a SCRIPT FLUSH): in the pipeline the
    # settle answers NOSCRIPT and the admit runs without it, finding the slot still held. The
    # settle is loaded and rerun, then the admit asked again: the caller is not refused.
    _without_flusher(ctx)
    p = make_principal(key_limits=Limits(max_concurrency=1))
    first = _admit(p)
    _settle_later(first)
    get_redis().script_flush()
    get_redis().script_load(gate._scripts(ctx)[0].script)
    second = _admit(p)
    assert _event_ids() == [first.id]
    assert get_redis().zcard("llmgate:rl:key:10:c") == 1  # second's slot only
    assert second.id


def test_a_refused_admit_still_delivers_the_settles_it_carried(ctx):
    settler = _without_flusher(ctx)
    p = make_principal(key_limits=Limits(rpm=1))
    first = _admit(p)
    _settle_later(first)
    with pytest.raises(RateLimited):
        _admit(p)
    assert _event_ids() == [first.id]
    assert settler.idle()


def test_redis_unreachable_counts_the_settle_lost(app_factory):
    dead = app_factory(REDIS_URL="redis://127.0.0.1:1/0", RATE_LIMIT_FAIL_OPEN=True)
    p = make_principal(key_limits=Limits(rpm=5))
    with dead.app_context():
        admission = _admit(p)
        lost = metrics.USAGE_EVENTS_LOST._value.get()
        _settle_later(admission)
        _wait_idle(dead)
        assert metrics.USAGE_EVENTS_LOST._value.get() == lost + 1


def test_pending_settles_are_sent_at_exit(ctx):
    # What atexit runs: everything still queued, sent from the calling thread.
    settler = _without_flusher(ctx)
    p = make_principal(key_limits=Limits(max_concurrency=3))
    admissions = [_admit(p) for _ in range(3)]
    for a in admissions:
        _settle_later(a)
    assert _event_ids() == []
    settler.send_now()
    assert _event_ids() == [a.id for a in admissions]
    assert settler.idle()


def test_a_forked_child_starts_with_nothing_to_send(ctx):
    # RQ work horses fork from a worker: what the parent queued is the parent's to send, once.
    settler = _without_flusher(ctx)
    p = make_principal(key_limits=Limits(max_concurrency=2))
    admission = _admit(p)
    _settle_later(admission)
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        os._exit(0 if settler.take() == [] and settler.idle() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    settler.send_now()
    assert _event_ids() == [admission.id]


def test_a_usage_flush_includes_settles_this_process_still_holds(ctx):
    # `llmgate usage flush` (drain.flush) right after an answer: the settle, queued or in the
    # flusher's hands, is sent first and lands in the ledger.
    from llmgate.accounting import drain
    from llmgate.extensions import db
    from llmgate.models.usage import UsageEvent

    p = make_principal(key_limits=Limits(max_concurrency=2))
    admissions = [_admit(p) for _ in range(2)]
    for a in admissions:
        _settle_later(a)
    drain.flush()
    ids = set(db.session.scalars(db.select(UsageEvent.event_id)))
    assert {a.id for a in admissions} <= ids
    assert gate.settler_for(ctx).idle()
