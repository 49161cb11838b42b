"""admit/settle against a real Redis: windows, reservations, slots, budgets, all-or-nothing."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from llmgate import metrics
from llmgate.accounting import gate
from llmgate.auth.principal import Budget, Limits
from llmgate.errors import QuotaExceeded, RateLimited, ServiceUnavailable
from llmgate.extensions import get_redis
from llmgate.providers.base import Limits as DeploymentLimits, Price, Usage

from .conftest import NOON, make_deployment, make_principal


def _admit(principal, deployment=None, *, tokens=10, attempt=0, now=NOON):
    return gate.admit(principal=principal, deployment=deployment or make_deployment(), estimated_tokens=tokens,
                      attempt=attempt, now=now)


def _settle(admission, usage=Usage(10, 5), outcome="ok"):
    gate.settle(admission, usage=usage, outcome=outcome, error_kind=None, latency_ms=3.0, ttft_ms=None,
                request_id="req-1")


def _events():
    return [json.loads(fields[b"e"]) for _, fields in get_redis().xrange(gate.STREAM_KEY)]


def test_requests_per_minute_exact_and_window_slides(ctx):
    p = make_principal(key_limits=Limits(rpm=5))
    admitted = [_admit(p, now=NOON + timedelta(seconds=i)) for i in range(5)]
    assert admitted[-1].headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(RateLimited) as refused:
        _admit(p, now=NOON + timedelta(seconds=10))
    assert "5 requests per minute" in refused.value.message and "key sk-lg-k10" in refused.value.message
    assert refused.value.headers["Retry-After"] == "50"  # the oldest leaves the window at NOON+60
    assert refused.value.details["limit"] == "rpm"
    with pytest.raises(RateLimited):
        _admit(p, now=NOON + timedelta(seconds=59, milliseconds=999))
    _admit(p, now=NOON + timedelta(seconds=60))  # exactly one left the window: exactly one more fits
    with pytest.raises(RateLimited):
        _admit(p, now=NOON + timedelta(seconds=60, milliseconds=500))


def test_headers_report_the_tightest_of_key_and_user(ctx):
    p = make_principal(key_limits=Limits(rpm=10, tpm=10_000), user_limits=Limits(rpm=3))
    a = _admit(p, tokens=400)
    assert a.headers["x-ratelimit-limit-requests"] == "3"
    assert a.headers["x-ratelimit-remaining-requests"] == "2"
    assert a.headers["x-ratelimit-limit-tokens"] == "10000"
    assert a.headers["x-ratelimit-remaining-tokens"] == "9600"
    assert a.headers["x-ratelimit-reset-requests"] == "1m0s"


def test_all_or_nothing_when_one_limit_refuses(ctx):
    p = make_principal(key_limits=Limits(rpm=10, max_concurrency=10), user_limits=Limits(rpm=1))
    _admit(p)
    before = metrics.RATE_LIMITED.labels(limit="rpm", scope="user")._value.get()
    for _ in range(3):
        with pytest.raises(RateLimited) as refused:
            _admit(p)
        assert "user user1@example.com" in refused.value.message
    assert metrics.RATE_LIMITED.labels(limit="rpm", scope="user")._value.get() == before + 3
    r = get_redis()
    assert r.zcard("llmgate:rl:key:10:w") == 1  # the key's window did not count the refused ones
    assert r.zcard("llmgate:rl:key:10:c") == 1


def test_token_reservation_is_corrected_by_real_usage(ctx):
    p = make_principal(key_limits=Limits(tpm=1000))
    first = _admit(p, tokens=600)
    with pytest.raises(RateLimited) as refused:
        _admit(p, tokens=600)
    assert refused.value.details["limit"] == "tpm"
    assert refused.value.headers["Retry-After"] == "60"
    _settle(first, Usage(80, 20))  # 600 reserved, 100 used
    second = _admit(p, tokens=600)
    assert second.headers["x-ratelimit-remaining-tokens"] == "300"
    _settle(second, Usage(700, 100))  # more than reserved: counted as used
    assert get_redis().get("llmgate:rl:key:10:s") == b"900"
    with pytest.raises(RateLimited) as too_big:
        _admit(p, tokens=5000)
    assert "Request too large" in too_big.value.message


def test_concurrency_slot_released_on_settle_and_expires_when_holder_dies(ctx):
    ctx.config["CONCURRENCY_LEASE_S"] = 30
    p = make_principal(key_limits=Limits(max_concurrency=2))
    a, b = _admit(p), _admit(p)
    with pytest.raises(RateLimited) as refused:
        _admit(p)
    assert refused.value.details["limit"] == "concurrency"
    _settle(a)
    c = _admit(p)
    # b and c are never settled, as if their process died: their leases run out.
    with pytest.raises(RateLimited):
        _admit(p, now=NOON + timedelta(seconds=29))
    _admit(p, now=NOON + timedelta(seconds=31))
    _admit(p, now=NOON + timedelta(seconds=31))
    assert b and c


def test_retries_count_the_deployment_but_not_the_key_again(ctx):
    p = make_principal(key_limits=Limits(rpm=1))
    d = make_deployment(limits=DeploymentLimits(rpm=2))
    _admit(p, d, attempt=0)
    retry = _admit(p, d, attempt=1)  # the key's one request is the same client request
    assert retry.headers["x-ratelimit-remaining-requests"] == "0"
    other = make_principal(user_id=2, key_id=20)
    with pytest.raises(RateLimited) as refused:
        _admit(other, d)
    assert refused.value.details == {"limit": "rpm", "scope": "deployment"}


def test_no_limits_means_no_redis_round_trip(ctx):
    r = get_redis()
    calls_before = r.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    a = _admit(make_principal())
    assert a.headers == {}
    assert r.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0) == calls_before
    _settle(a)
    assert len(_events()) == 1


def test_settle_appends_one_event_with_cost_and_is_idempotent(ctx):
    a = _admit(make_principal(), make_deployment(price=Price(2.0, 8.0)))
    _settle(a, Usage(1000, 500, 200))
    _settle(a, Usage(1000, 500, 200))  # a second settle is ignored
    [event] = _events()
    assert event["event_id"] == a.id and event["cost"] == "0.00600000"
    assert (event["input_tokens"], event["output_tokens"], event["cached_tokens"]) == (1000, 500, 200)
    unknown = _admit(make_principal(), make_deployment(price=None))
    _settle(unknown)
    assert _events()[1]["cost"] is None


def test_budget_refuses_when_spent_and_resets_next_period(ctx):
    p = make_principal(user_budget=Budget(limit_usd=0.00002, period="day"))
    d = make_deployment(price=Price(1.0, 1.0))  # 10 + 5 tokens = $0.000015 a call
    _settle(_admit(p, d))
    _settle(_admit(p, d))  # started under budget: allowed to finish and overshoot
    with pytest.raises(QuotaExceeded) as refused:
        _admit(p, d, now=NOON + timedelta(hours=1))
    error = refused.value
    assert error.status == 429 and error.code == "insufficient_quota"
    assert "user user1@example.com" in error.message and "per day" in error.message
    assert "resets at 2026-03-11T00:00:00Z" in error.message
    assert error.headers["Retry-After"] == str(11 * 3600)
    _admit(p, d, now=NOON + timedelta(hours=12))  # the next UTC day: a fresh bucket
    # retries are not refused by the caller's budget (the request was admitted already)
    _admit(p, d, attempt=1, now=NOON + timedelta(hours=1))


def test_lifetime_budget_never_resets(ctx):
    p = make_principal(key_budget=Budget(limit_usd=0.00001, period="total"))
    _settle(_admit(p))
    with pytest.raises(QuotaExceeded) as refused:
        _admit(p, now=NOON + timedelta(days=400))
    assert "does not reset" in refused.value.message and "Retry-After" not in refused.value.headers


@pytest.mark.parametrize("fail_open", [False, True])
def test_redis_unreachable_fails_closed_or_open(app_factory, fail_open):
    dead = app_factory(REDIS_URL="redis://127.0.0.1:1/0", RATE_LIMIT_FAIL_OPEN=fail_open)
    p = make_principal(key_limits=Limits(rpm=5))
    with dead.app_context():
        if fail_open:
            a = _admit(p)
            lost = metrics.USAGE_EVENTS_LOST._value.get()
            _settle(a)  # logged, not raised: the answer was already made
            assert metrics.USAGE_EVENTS_LOST._value.get() == lost + 1
        else:
            with pytest.raises(ServiceUnavailable):
                _admit(p)
