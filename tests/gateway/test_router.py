"""Routing decisions on their own: pool choice, fallback order, backoff, health and shared cool-downs."""
from __future__ import annotations

import pytest

from llmgate.gateway.catalog import Catalog
from llmgate.gateway.health import COOLDOWN_KEY, Health
from llmgate.gateway.models_file import parse
from llmgate.gateway.router import RetryPolicy, model_chain, pick
from llmgate.providers.errors import BadRequestError, UpstreamServerError

CHAIN = """
models:
  - {name: a, provider: openai, model: m, api_key: k, fallbacks: [b, c]}
  - {name: b, provider: openai, model: m, api_key: k, fallbacks: [d]}
  - {name: c, provider: openai, model: m, api_key: k, fallbacks: [b]}
  - {name: d, provider: openai, model: m, api_key: k}
  - {name: p, provider: openai, model: m1, api_key: k}
  - {name: p, provider: openai, model: m2, api_key: k}
  - {name: p, provider: openai, model: m3, api_key: k}
"""


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(parse(CHAIN, environ={}), source="test")


def health(**overrides) -> Health:
    return Health(**{"failures_to_cool_down": 2, "cooldown_s": 30.0, **overrides})


def test_fallbacks_in_order_then_theirs_each_once(catalog):
    assert model_chain(catalog, "a") == ["a", "b", "c", "d"]
    assert model_chain(catalog, "d") == ["d"]


def test_pick_least_in_flight_with_random_ties(catalog):
    pool, state = catalog.deployments("p"), health()
    state.started(pool[0])
    state.started(pool[1])
    assert pick(pool, state, exclude=set(), tried=set()) is pool[2]
    state.started(pool[2])
    assert {pick(pool, state, exclude=set(), tried=set()) for _ in range(200)} == set(pool)


def test_pick_prefers_untried_and_skips_excluded_and_cooling(catalog):
    pool, state = catalog.deployments("p"), health()
    assert pick(pool, state, exclude={pool[0]}, tried={pool[1]}) is pool[2]
    for _ in range(2):
        state.started(pool[2])
        state.failed(pool[2], UpstreamServerError("boom"))
    assert state.cooldown_remaining(pool[2]) > 0
    assert pick(pool, state, exclude={pool[0], pool[1]}, tried=set()) is None
    assert pick(pool, state, exclude=set(), tried={pool[0]}) is pool[1]


def test_caller_errors_do_not_cool_a_deployment_down(catalog):
    deployment, state = catalog.deployments("d")[0], health(failures_to_cool_down=1)
    state.started(deployment)
    assert state.failed(deployment, BadRequestError("bad")) is False
    assert state.cooldown_remaining(deployment) == 0 and state.in_flight(deployment) == 0


def test_success_resets_consecutive_failures(catalog):
    deployment, state = catalog.deployments("d")[0], health()
    for outcome in ("fail", "ok", "fail"):
        state.started(deployment)
        if outcome == "ok":
            state.succeeded(deployment, 0.01)
        else:
            state.failed(deployment, UpstreamServerError("x"))
    assert state.cooldown_remaining(deployment) == 0
    row = state.snapshot((deployment,))[0]
    assert row["state"] == "healthy" and row["requests"] == 3 and row["recent_error_rate"] == pytest.approx(2 / 3, abs=1e-3)


def test_cooldown_is_shared_through_redis(app, catalog):
    from llmgate.extensions import get_redis

    with app.app_context():
        redis = get_redis()
        deployment = catalog.deployments("d")[0]
        here, there = health(redis=redis), health(redis=redis)
        for _ in range(2):
            here.started(deployment)
            here.failed(deployment, UpstreamServerError("x"))
        assert redis.pttl(COOLDOWN_KEY + deployment.id) > 0
        assert there.cooldown_remaining(deployment) == 0
        there.refresh_shared((deployment,))
        assert 29 < there.cooldown_remaining(deployment) <= 30


def test_backoff_is_full_jitter_and_capped():
    policy = RetryPolicy(backoff_base_s=0.5, backoff_max_s=2.0)
    samples = [policy.backoff(retry) for retry in (1, 2, 3, 10) for _ in range(200)]
    assert min(samples) >= 0 and max(samples) <= 2.0
    assert max(policy.backoff(1) for _ in range(200)) <= 0.5
