"""Limits hold exactly when several OS processes admit for one key at once (Redis server time)."""
from __future__ import annotations

import multiprocessing
import time

import pytest

from llmgate.accounting import gate
from llmgate.auth.principal import Limits
from llmgate.errors import RateLimited
from llmgate.extensions import get_redis
from llmgate.providers.base import Usage

from .conftest import make_deployment, make_principal

pytestmark = pytest.mark.once

PROCESSES = 6
TRIES = 60


def _hammer(app, principal, tokens, hold_s, start_at, results, until_ok):
    # A forked child: new Redis connections are made on first use (redis-py checks the pid).
    # Either TRIES attempts, or (until_ok) attempts until that many were admitted, 1 ms apart
    # after a refusal, for at most 20 s.
    ok = refused = peak = 0
    deployment = make_deployment()
    with app.app_context():
        r = get_redis()
        while time.time() < start_at:
            pass
        deadline = start_at + 20
        tries = 0
        while (ok < until_ok and time.time() < deadline) if until_ok else tries < TRIES:
            tries += 1
            try:
                admission = gate.admit(principal=principal, deployment=deployment, estimated_tokens=tokens, attempt=0)
            except RateLimited:
                refused += 1
                if until_ok:
                    time.sleep(0.001)
                continue
            ok += 1
            # Counted after admit, uncounted before settle: never more than the slots really held.
            peak = max(peak, r.incr("test:inflight"))
            if hold_s:
                time.sleep(hold_s)
            r.decr("test:inflight")
            gate.settle(admission, usage=Usage(tokens, 0), outcome="ok", error_kind=None, latency_ms=1.0,
                        ttft_ms=None, request_id="r")
    results.put((ok, refused, peak))


def _run(app, principal, *, tokens=1, hold_s=0.0, until_ok=0):
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    start_at = time.time() + 0.5
    procs = [ctx.Process(target=_hammer, args=(app, principal, tokens, hold_s, start_at, results, until_ok))
             for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(10)
        assert proc.exitcode == 0
    return [sum(o[i] for o in outcomes) for i in range(2)] + [max(o[2] for o in outcomes)]


def test_requests_per_minute_exact_across_processes(app):
    ok, refused, _ = _run(app, make_principal(key_limits=Limits(rpm=100)))
    # 360 tries within a few seconds, one sliding minute: exactly the limit gets through.
    assert (ok, refused) == (100, PROCESSES * TRIES - 100)


def test_tokens_per_minute_exact_across_processes(app):
    ok, refused, _ = _run(app, make_principal(user_limits=Limits(tpm=1000)), tokens=7)
    assert (ok, refused) == (1000 // 7, PROCESSES * TRIES - 1000 // 7)


def test_concurrency_never_exceeded_across_processes(app):
    # Each process keeps asking until it was admitted 10 times: 60 admissions through 3 slots
    # prove slots are released and reused, not leaked (a fixed number of tries made this depend
    # on how fast a refusal is compared with the 3 ms hold).
    ok, refused, peak = _run(app, make_principal(key_limits=Limits(max_concurrency=3)), hold_s=0.003, until_ok=10)
    assert peak <= 3
    assert ok == PROCESSES * 10
    assert refused > 0  # six processes did contend for three slots
    with app.app_context():
        assert get_redis().zcard("llmgate:rl:key:10:c") == 0
