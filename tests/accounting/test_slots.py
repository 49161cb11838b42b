"""Concurrency slots against a real Redis: a running call keeps its slot past its lease (renewed),
a process that dies without settling frees its slots within one lease."""
from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from llmgate.accounting import gate, slots
from llmgate.auth.principal import Limits
from llmgate.errors import RateLimited
from llmgate.extensions import get_redis
from llmgate.providers.base import Usage

from .conftest import make_deployment, make_principal

LEASE_S = 1.5  # renewed every 0.5 s


def _admit(principal):
    return gate.admit(principal=principal, deployment=make_deployment(), estimated_tokens=10, attempt=0)


def _settle(admission):
    gate.settle(admission, usage=Usage(10, 5), outcome="ok", error_kind=None, latency_ms=1.0, ttft_ms=None,
                request_id="req")


@pytest.fixture
def short_lease(ctx):
    ctx.config["CONCURRENCY_LEASE_S"] = LEASE_S
    return ctx


def test_a_running_call_keeps_its_slot_past_its_lease(short_lease):
    p = make_principal(key_limits=Limits(max_concurrency=1))
    running = _admit(p)
    time.sleep(LEASE_S * 2)  # two leases: without renewal the slot would have expired
    with pytest.raises(RateLimited) as refused:
        _admit(p)
    assert refused.value.details["limit"] == "concurrency"
    _settle(running)
    assert slots.keeper_for(short_lease).held() == 0
    _settle(_admit(p))  # the settle freed it


def test_a_renewal_never_brings_back_a_settled_slot(short_lease):
    p = make_principal(key_limits=Limits(max_concurrency=2))
    a, b = _admit(p), _admit(p)
    keeper = slots.keeper_for(short_lease)
    assert keeper.held() == 2 and keeper.renew() == 2
    slot_key = a.slot_scopes[0]
    first_expiry = get_redis().zscore(slot_key, a.id)
    time.sleep(0.05)
    assert keeper.renew() == 2 and get_redis().zscore(slot_key, a.id) > first_expiry
    _settle(a)
    assert keeper.renew() == 1
    assert get_redis().zrange(slot_key, 0, -1) == [b.id.encode()]
    _settle(b)
    assert keeper.renew() == 0 and get_redis().zcard(slot_key) == 0


def _admit_and_die(app, ready):
    with app.app_context():
        _admit(make_principal(key_limits=Limits(max_concurrency=1)))
    ready.set()
    time.sleep(60)  # killed by the parent before it settles


def test_slots_of_a_killed_process_free_within_one_lease(short_lease):
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    child = context.Process(target=_admit_and_die, args=(short_lease, ready))
    child.start()
    try:
        assert ready.wait(10)
        p = make_principal(key_limits=Limits(max_concurrency=1))
        time.sleep(LEASE_S)  # the child renews its slot while it lives
        with pytest.raises(RateLimited):
            _admit(p)
    finally:
        os.kill(child.pid, 9)
        child.join(10)
    killed = time.monotonic()
    while True:
        try:
            admission = _admit(p)
            break
        except RateLimited:
            assert time.monotonic() - killed < LEASE_S + 0.5, "the dead process's slot outlived its lease"
            time.sleep(0.05)
    _settle(admission)
