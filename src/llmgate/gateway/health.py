"""Deployment health: calls in flight, consecutive failures, cool-downs, recent error rate and latency.

Counters are per process (each gunicorn worker balances its own in-flight calls). A cool-down
is shared: the process that trips it writes ``llmgate:cooldown:<deployment id>`` to Redis with
a TTL, and every process re-reads those keys at most once a second, so a failing deployment is
skipped everywhere within a second without a Redis round trip per request.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app

from llmgate.providers.base import Deployment
from llmgate.providers.errors import ProviderError

log = logging.getLogger(__name__)

EXTENSION_KEY = "llmgate.health"
COOLDOWN_KEY = "llmgate:cooldown:"
_RECENT = 100  # outcomes kept for the recent error rate
_LATENCY_WEIGHT = 0.2  # of the newest sample in the latency moving average

# Failures that say something about the deployment (not about the caller's request).
DEPLOYMENT_FAILURES = frozenset({"rate_limited", "timeout", "connection", "upstream_server",
                                 "authentication", "permission", "not_found"})


@dataclass
class DeploymentHealth:
    in_flight: int = 0
    consecutive_failures: int = 0
    cooldown_until: float = 0.0  # wall clock, so that it means the same in every process
    requests: int = 0
    errors: int = 0
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=_RECENT))  # True = failed
    latency_ms: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None


class Health:
    def __init__(self, *, failures_to_cool_down: int, cooldown_s: float, redis: Any = None,
                 shared_refresh_s: float = 1.0) -> None:
        self.failures_to_cool_down = max(1, failures_to_cool_down)
        self.cooldown_s = cooldown_s
        self._redis = redis
        self._shared_refresh_s = shared_refresh_s
        self._next_refresh = 0.0
        self._redis_warned_at = 0.0
        self._states: dict[str, DeploymentHealth] = {}
        self._lock = threading.Lock()

    def state(self, deployment: Deployment) -> DeploymentHealth:
        state = self._states.get(deployment.id)
        if state is None:
            with self._lock:
                state = self._states.setdefault(deployment.id, DeploymentHealth())
        return state

    # --- the call lifecycle ---------------------------------------------------------------------
    def started(self, deployment: Deployment) -> None:
        state = self.state(deployment)
        with self._lock:
            state.in_flight += 1

    def succeeded(self, deployment: Deployment, latency_s: float) -> None:
        state = self.state(deployment)
        with self._lock:
            state.in_flight -= 1
            state.requests += 1
            state.consecutive_failures = 0
            state.recent.append(False)
            ms = latency_s * 1000.0
            state.latency_ms = ms if state.latency_ms is None else (
                state.latency_ms + _LATENCY_WEIGHT * (ms - state.latency_ms))

    def failed(self, deployment: Deployment, error: ProviderError | None) -> bool:
        """Record a failed call; True when this failure put the deployment in cool-down."""
        state = self.state(deployment)
        counts = error is None or error.kind in DEPLOYMENT_FAILURES
        with self._lock:
            state.in_flight -= 1
            state.requests += 1
            if error is not None:
                state.last_error, state.last_error_at = f"{error.kind}: {error.message}"[:300], time.time()
            if not counts:
                state.recent.append(False)
                return False
            state.errors += 1
            state.recent.append(True)
            state.consecutive_failures += 1
            trip = state.consecutive_failures >= self.failures_to_cool_down and self.cooldown_s > 0
            if trip:
                state.consecutive_failures = 0
                state.cooldown_until = time.time() + self.cooldown_s
        if trip:
            self._share_cooldown(deployment)
        return trip

    def cancelled(self, deployment: Deployment) -> None:
        """The caller went away: neither a success nor the deployment's fault."""
        state = self.state(deployment)
        with self._lock:
            state.in_flight -= 1

    # --- routing questions ------------------------------------------------------------------------
    def cooldown_remaining(self, deployment: Deployment, now: float | None = None) -> float:
        state = self._states.get(deployment.id)
        if state is None or not state.cooldown_until:
            return 0.0
        return max(0.0, state.cooldown_until - (now or time.time()))

    def in_flight(self, deployment: Deployment) -> int:
        state = self._states.get(deployment.id)
        return state.in_flight if state is not None else 0

    def refresh_shared(self, deployments: tuple[Deployment, ...]) -> None:
        """Pick up cool-downs other processes set; a Redis read at most once per interval."""
        now = time.monotonic()
        if now < self._next_refresh or self._redis is None or not deployments:
            return
        self._next_refresh = now + self._shared_refresh_s
        try:
            values = self._redis.mget([COOLDOWN_KEY + d.id for d in deployments])
        except Exception as err:  # Redis down: keep routing on what this process knows
            self._warn_redis(err)
            return
        for deployment, value in zip(deployments, values):
            if value is None:
                continue
            until = float(value)
            state = self.state(deployment)
            if until > state.cooldown_until:
                state.cooldown_until = until

    def _share_cooldown(self, deployment: Deployment) -> None:
        if self._redis is None:
            return
        until = self.state(deployment).cooldown_until
        try:
            self._redis.set(COOLDOWN_KEY + deployment.id, repr(until), px=max(1, int(self.cooldown_s * 1000)))
        except Exception as err:
            self._warn_redis(err)

    def _warn_redis(self, err: Exception) -> None:
        if time.monotonic() - self._redis_warned_at > 60:
            self._redis_warned_at = time.monotonic()
            log.warning("cool-downs are not shared across processes: Redis failed (%s)", err)

    # --- the dashboard's view ---------------------------------------------------------------------
    def snapshot(self, deployments: tuple[Deployment, ...], *, missing_keys: dict[str, str] | None = None
                 ) -> list[dict[str, Any]]:
        self._next_refresh = 0.0
        self.refresh_shared(deployments)
        now = time.time()
        rows = []
        for deployment in deployments:
            state = self._states.get(deployment.id) or DeploymentHealth()
            remaining = self.cooldown_remaining(deployment, now)
            recent = list(state.recent)
            variable = (missing_keys or {}).get(deployment.id)
            rows.append({
                "model": deployment.name, "deployment": deployment.id, "provider": deployment.provider,
                "upstream_model": deployment.model,
                "state": "unconfigured" if variable else ("cooling_down" if remaining else "healthy"),
                "missing_env": variable,
                "cooldown_remaining_s": round(remaining, 3),
                "in_flight": state.in_flight, "consecutive_failures": state.consecutive_failures,
                "requests": state.requests, "errors": state.errors,
                "recent_error_rate": round(sum(recent) / len(recent), 4) if recent else 0.0,
                "latency_ms": round(state.latency_ms, 2) if state.latency_ms is not None else None,
                "last_error": state.last_error, "last_error_at": state.last_error_at,
            })
        return rows


def init_app(app: Flask) -> None:
    from llmgate.extensions import get_redis

    app.extensions[EXTENSION_KEY] = Health(
        failures_to_cool_down=int(app.config.get("GATEWAY_COOLDOWN_FAILURES", 3)),
        cooldown_s=float(app.config.get("GATEWAY_COOLDOWN_S", 30.0)),
        redis=get_redis(app),
    )


def get_health(app: Flask | None = None) -> Health:
    return (app or current_app).extensions[EXTENSION_KEY]


def snapshot(app: Flask | None = None) -> list[dict[str, Any]]:
    """Every deployment of the current catalog with its health, for the dashboard (this process's counters)."""
    from llmgate.gateway.catalog import get_catalog

    catalog = get_catalog(app)
    return get_health(app).snapshot(catalog.deployments(), missing_keys=dict(catalog.missing_keys))
