"""Fixtures for accounting tests: principals and deployments built directly (no auth needed)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from llmgate.auth.principal import Budget, Limits, Principal
from llmgate.providers.base import Deployment, Limits as DeploymentLimits, Price

NOON = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


def make_principal(*, user_id: int = 1, key_id: int | None = 10, key_limits: Limits = Limits(),
                   user_limits: Limits = Limits(), key_budget: Budget | None = None,
                   user_budget: Budget | None = None, role: str = "member") -> Principal:
    return Principal(user_id=user_id, email=f"user{user_id}@example.com", role=role, key_id=key_id,
                     key_prefix=None if key_id is None else f"sk-lg-k{key_id}", key_limits=key_limits,
                     user_limits=user_limits, key_budget=key_budget, user_budget=user_budget)


def make_deployment(name: str = "gpt-test", *, provider: str = "openai", index: int = 0,
                    price: Price | None = Price(1.0, 2.0), limits: DeploymentLimits = DeploymentLimits()) -> Deployment:
    return Deployment(name=name, provider=provider, model=name, index=index,
                      price=price if price is not None else Price(), limits=limits)


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app


def make_event(ts: datetime, *, user_id: int = 1, key_id: int | None = 10, model: str = "gpt-test",
               provider: str = "openai", input_tokens: int = 100, output_tokens: int = 50,
               cost: str | None = "0.001", outcome: str = "ok", event_id: str | None = None) -> dict:
    """A usage event shaped as ``gate.settle`` writes it to the stream."""
    import uuid

    return {"event_id": event_id or uuid.uuid4().hex, "request_id": "req", "ts": ts.timestamp(), "key_id": key_id,
            "user_id": user_id, "model": model, "deployment_id": f"{model}#0", "provider": provider,
            "input_tokens": input_tokens, "output_tokens": output_tokens, "cached_tokens": 0, "cost": cost,
            "latency_ms": 12.5, "ttft_ms": None, "outcome": outcome,
            "error_kind": "server_error" if outcome == "error" else None, "batch_id": None, "attempt": 0}
