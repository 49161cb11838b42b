"""Pytest fixtures over the fake upstream: import them into a conftest (``from tests.fakes.fixtures import *``
is avoided; name what you use)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmgate.providers.base import Deployment, Provider
from llmgate.providers.registry import build_provider
from tests.fakes.upstream import FakeUpstream


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeUpstream) -> Iterator[FakeUpstream]:
    """The session's fake upstream, emptied (requests, script, delay) for each test."""
    fake_server.reset()
    yield fake_server
    fake_server.reset()


def deployment_for(fake: FakeUpstream, provider: str, *, model: str | None = None, **fields: object) -> Deployment:
    api_base = fake.base_url if provider == "anthropic" else fake.openai_base_url
    options: dict[str, object] = {"api_key": "sk-test", "api_base": api_base, "timeout_s": 5.0}
    options.update(fields)
    return Deployment(name=f"{provider}-model", provider=provider, model=model or f"upstream-{provider}", **options)


@pytest.fixture(scope="session")
def providers(fake_server: FakeUpstream) -> Iterator[dict[str, Provider]]:
    """One long-lived provider per kind, all pointed at the fake (as deployments would be)."""
    built = {name: build_provider(deployment_for(fake_server, name))
             for name in ("openai", "anthropic", "openai-compatible")}
    yield built
    for provider in built.values():
        provider.close()
