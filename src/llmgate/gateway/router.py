"""Which deployment serves a call, and what happens when it fails: retries, cool-downs, fallbacks.

For one request: the requested model's pool is tried first — least calls in flight in this
process, ties shuffled, deployments in cool-down skipped — with up to ``max_retries`` retries on
retryable failures (rate limited, timeout, connection, 5xx), waiting ``Retry-After`` when the
upstream gives one (up to a cap) or else exponential backoff with full jitter. A retry prefers a
deployment of the pool not tried yet (no wait) over the same one again (after the wait). When a
pool is exhausted, the model's ``fallbacks`` are tried in order (breadth first through their own
fallbacks), each with its own retries. A caller's bad request is never retried nor fallen back
from, except ``context_too_long``, which a bigger-context fallback may serve.
"""
from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from llmgate import metrics
from llmgate.auth.principal import Principal
from llmgate.errors import RateLimited, ServiceUnavailable
from llmgate.gateway.attempt import Attempt
from llmgate.gateway.catalog import Catalog
from llmgate.gateway.health import Health
from llmgate.providers.base import Deployment, Provider, Usage
from llmgate.providers.errors import ProviderError, UpstreamServerError, UpstreamTimeout

log = logging.getLogger(__name__)

R = TypeVar("R")

# Failures that say this deployment cannot serve anyone right now: move on to another one at once.
_DEPLOYMENT_BROKEN = frozenset({"authentication", "permission", "not_found"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 2
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    retry_after_max_s: float = 10.0

    @classmethod
    def from_config(cls, config: Any) -> RetryPolicy:
        return cls(max_retries=int(config.get("GATEWAY_MAX_RETRIES", 2)),
                   backoff_base_s=float(config.get("GATEWAY_BACKOFF_BASE_S", 0.5)),
                   backoff_max_s=float(config.get("GATEWAY_BACKOFF_MAX_S", 8.0)),
                   retry_after_max_s=float(config.get("GATEWAY_RETRY_AFTER_MAX_S", 10.0)))

    def backoff(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(cap, base·2^(retry-1))]."""
        return random.uniform(0.0, min(self.backoff_max_s, self.backoff_base_s * (2 ** max(0, retry - 1))))


@dataclass(slots=True)
class Routed(Generic[R]):
    """What the winning attempt returned; ``upstream_s`` is all time spent on upstreams (calls, waits)."""

    result: R
    attempt: Attempt
    upstream_s: float


def model_chain(catalog: Catalog, model: str) -> list[str]:
    """The model, then its fallbacks in order, then theirs (breadth first), each once."""
    chain, queue = [model], list(catalog.fallbacks(model))
    while queue:
        name = queue.pop(0)
        if name not in chain and name in catalog:
            chain.append(name)
            queue.extend(catalog.fallbacks(name))
    return chain


def pick(pool: tuple[Deployment, ...], health: Health, *, exclude: set[Deployment], tried: set[Deployment]
         ) -> Deployment | None:
    """Least in flight among the usable deployments, untried first, ties broken at random."""
    now = time.time()
    usable = [d for d in pool if d not in exclude and not health.cooldown_remaining(d, now)]
    if not usable:
        return None
    fresh = [d for d in usable if d not in tried]
    candidates = fresh or usable
    if len(candidates) == 1:
        return candidates[0]
    least = min(health.in_flight(d) for d in candidates)
    return random.choice([d for d in candidates if health.in_flight(d) == least])


def route(*, catalog: Catalog, health: Health, policy: RetryPolicy, model: str, principal: Principal,
          request_id: str, call: Callable[[Provider, float], R], estimated_tokens: int = 0,
          deadline: float | None = None, batch_id: str | None = None, keep_open: bool = False,
          stream: bool = False) -> Routed[R]:
    """Run ``call(provider, timeout_s)`` until one deployment answers.

    ``call`` raises ``ProviderError`` on failure. Unless ``keep_open`` — a stream, finished when
    it ends, or a whole answer settled after it is sent — the winning attempt is settled here
    with ``result.usage``. ``stream``: the call returned at the first event (time to first token).
    ``deadline`` is a ``time.monotonic()`` instant covering every attempt and wait.
    Raises the last ``ProviderError``, ``RateLimited``/``QuotaExceeded`` from accounting, or
    ``ServiceUnavailable`` when every deployment is cooling down.
    """
    upstream_s = 0.0
    admitted = 0
    last_error: Exception | None = None
    config_error: ProviderError | None = None  # reported only when nothing better explains the failure
    for position, name in enumerate(model_chain(catalog, model)):
        pool = catalog.deployments(name)
        if position > 0:
            metrics.UPSTREAM_FALLBACKS.labels(model, name).inc()
            log.info("falling back from %s to %s", model, name,
                     extra={"model": model, "fallback": name, "reason": _kind(last_error)})
        health.refresh_shared(pool)
        exclude: set[Deployment] = set()
        tried: set[Deployment] = set()
        retries = 0
        while True:
            deployment = pick(pool, health, exclude=exclude, tried=tried)
            if deployment is None:
                break
            if deployment in tried:
                wait = _wait_before_retry(policy, retries, last_error)
                if wait is None or (deadline is not None and time.monotonic() + wait >= deadline):
                    break
                if wait:
                    time.sleep(wait)
                    upstream_s += wait
                metrics_retry = True
            else:
                metrics_retry = bool(tried)
            timeout = deployment.timeout_s
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    raise UpstreamTimeout(f"the request's timeout ran out before {model!r} answered")
            try:
                provider = catalog.provider(deployment)
            except ProviderError as err:  # llmgate has no key for it: skip, the operator was warned
                config_error = err
                exclude.add(deployment)
                continue
            try:
                attempt = Attempt.start(deployment, number=admitted, principal=principal,
                                        estimated_tokens=estimated_tokens, health=health, request_id=request_id,
                                        batch_id=batch_id)
            except RateLimited as err:
                if getattr(err, "scope", None) != "deployment" and (err.details or {}).get("scope") != "deployment":
                    raise  # the caller's own limit or budget: no other deployment changes that
                last_error = err
                exclude.add(deployment)
                continue
            admitted += 1
            if metrics_retry:
                attempt.metrics.retries.inc()
            tried.add(deployment)
            call_started = time.perf_counter()
            try:
                result = call(provider, timeout)
            except Exception as raised:
                upstream_s += time.perf_counter() - call_started
                err = raised if isinstance(raised, ProviderError) else _unreadable(raised, deployment)
                attempt.fail(err)
                last_error = err
                if err.kind == "bad_request":
                    raise
                if err.kind == "context_too_long":
                    break  # only a fallback (with a bigger window) can help
                if err.kind in _DEPLOYMENT_BROKEN or not err.retryable:
                    exclude.add(deployment)
                    continue
                retries += 1
                if retries > policy.max_retries:
                    break
                if err.retry_after is not None and err.retry_after > policy.retry_after_max_s:
                    exclude.add(deployment)  # too long to hold the caller: try elsewhere
                continue
            except BaseException:  # the caller went away (GeneratorExit, a gevent Timeout…)
                attempt.cancel(Usage())
                raise
            upstream_s += time.perf_counter() - call_started
            if stream:
                attempt.first_byte()
            if not keep_open:
                attempt.succeed(_usage_of(result))
            return Routed(result, attempt, upstream_s)
    if last_error is not None:
        raise last_error
    unavailable = _all_cooling_down(catalog, health, model) or config_error
    raise unavailable or ServiceUnavailable(f"No deployment of model {model!r} is available.",
                                            code="no_deployment")


def _wait_before_retry(policy: RetryPolicy, retries: int, error: Exception | None) -> float | None:
    """Seconds to wait before calling the same deployment again (None: do not)."""
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        return None if retry_after > policy.retry_after_max_s else retry_after
    return policy.backoff(retries)


def _usage_of(result: Any) -> Usage:
    usage = getattr(result, "usage", None)
    return usage if isinstance(usage, Usage) else Usage()


def _unreadable(error: Exception, deployment: Deployment) -> ProviderError:
    """An answer that broke translation (not JSON, wrong shape) is the upstream's failure, not ours."""
    log.warning("unreadable answer from %s: %s: %s", deployment.id, type(error).__name__, error,
                extra={"deployment": deployment.id}, exc_info=error)
    return UpstreamServerError(f"the upstream's answer could not be read ({type(error).__name__}: {error})")


def _kind(error: Exception | None) -> str | None:
    return getattr(error, "kind", None) or (type(error).__name__ if error else None)


def _all_cooling_down(catalog: Catalog, health: Health, model: str) -> ServiceUnavailable | None:
    now = time.time()
    remaining = [r for name in model_chain(catalog, model) for d in catalog.deployments(name)
                 if (r := health.cooldown_remaining(d, now)) > 0]
    if not remaining:
        return None
    wait = max(1, math.ceil(min(remaining)))
    return ServiceUnavailable(
        f"No deployment of model {model!r} (or its fallbacks) is available: they are cooling down after "
        f"repeated upstream failures (or not configured). Retry after {wait} s.",
        code="no_healthy_deployment", headers={"Retry-After": str(wait)})
