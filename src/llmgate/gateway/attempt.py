"""One upstream attempt: admitted by accounting, counted in health and metrics, finished exactly once.

``Attempt.start`` calls ``accounting.gate.admit`` (which may refuse with ``RateLimited`` or
``QuotaExceeded``); ``succeed``/``fail``/``cancel`` call ``settle`` and record the outcome. A
stream's attempt stays open until the stream ends, so its usage and latency are whole.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from llmgate import metrics
from llmgate.accounting import gate
from llmgate.auth.principal import Principal
from llmgate.gateway.health import Health
from llmgate.providers.base import Deployment, Usage
from llmgate.providers.errors import ProviderError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeploymentMetrics:
    """The metric children of one deployment, resolved once: ``labels()`` costs a lock and a dict
    lookup on every call, too much to pay several times per request."""

    requests_ok: MetricWrapperBase
    requests_error: MetricWrapperBase
    requests_cancelled: MetricWrapperBase
    retries: MetricWrapperBase
    cooldowns: MetricWrapperBase
    latency: MetricWrapperBase
    ttft: MetricWrapperBase
    tokens_in: MetricWrapperBase
    tokens_out: MetricWrapperBase
    in_flight: MetricWrapperBase
    labels: tuple[str, str, str]

    def error(self, kind: str) -> MetricWrapperBase:
        return metrics.UPSTREAM_ERRORS.labels(*self.labels, kind)


# Prometheus children are process-wide like the registry itself, so this cache is too.
_METRICS: dict[tuple[str, str, str], DeploymentMetrics] = {}


def metrics_for(deployment: Deployment) -> DeploymentMetrics:
    key = (deployment.name, deployment.id, deployment.provider)
    found = _METRICS.get(key)
    if found is None:
        found = _METRICS[key] = DeploymentMetrics(
            requests_ok=metrics.UPSTREAM_REQUESTS.labels(*key, "ok"),
            requests_error=metrics.UPSTREAM_REQUESTS.labels(*key, "error"),
            requests_cancelled=metrics.UPSTREAM_REQUESTS.labels(*key, "cancelled"),
            retries=metrics.UPSTREAM_RETRIES.labels(*key),
            cooldowns=metrics.UPSTREAM_COOLDOWNS.labels(*key),
            latency=metrics.UPSTREAM_LATENCY.labels(*key),
            ttft=metrics.UPSTREAM_TTFT.labels(*key),
            tokens_in=metrics.UPSTREAM_TOKENS.labels(*key, "input"),
            tokens_out=metrics.UPSTREAM_TOKENS.labels(*key, "output"),
            in_flight=metrics.UPSTREAM_IN_FLIGHT.labels(*key),
            labels=key,
        )
    return found


def estimate_tokens(body: dict[str, Any], raw_size: int | None = None) -> int:
    """A cheap upper-ish estimate for the token reservation (corrected by ``settle``): ~4 bytes a
    token for the prompt plus the requested completion budget."""
    size = raw_size if raw_size is not None else len(str(body.get("messages") or body.get("input") or ""))
    completion = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    return size // 4 + (completion if isinstance(completion, int) else 0)


class Attempt:
    __slots__ = ("deployment", "number", "admission", "metrics", "_health", "_request_id", "_batch_id",
                 "_started", "_first_byte", "finished")

    def __init__(self, deployment: Deployment, number: int, admission: gate.Admission, health: Health,
                 *, request_id: str, batch_id: str | None) -> None:
        self.deployment = deployment
        self.number = number
        self.admission = admission
        self.metrics = metrics_for(deployment)
        self._health = health
        self._request_id = request_id
        self._batch_id = batch_id
        self._started = time.perf_counter()
        self._first_byte: float | None = None
        self.finished = False
        health.started(deployment)
        self.metrics.in_flight.inc()

    @classmethod
    def start(cls, deployment: Deployment, *, number: int, principal: Principal, estimated_tokens: int,
              health: Health, request_id: str, batch_id: str | None = None) -> Attempt:
        """Admit and open an attempt; raises ``RateLimited``/``QuotaExceeded`` from accounting."""
        admission = gate.admit(principal=principal, deployment=deployment, estimated_tokens=estimated_tokens,
                               attempt=number)
        return cls(deployment, number, admission, health, request_id=request_id, batch_id=batch_id)

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self._started

    def first_byte(self) -> float:
        """Mark the first streamed event; returns the time to it in seconds."""
        if self._first_byte is None:
            self._first_byte = time.perf_counter() - self._started
            self.metrics.ttft.observe(self._first_byte)
        return self._first_byte

    def succeed(self, usage: Usage, *, later: bool = False) -> None:
        """``later``: the answer is already sent, settle without waiting (``gate.settle``)."""
        if self._close():
            return
        latency = self.elapsed_s
        self._health.succeeded(self.deployment, latency)
        self.metrics.requests_ok.inc()
        self.metrics.latency.observe(latency)
        if usage.input_tokens:
            self.metrics.tokens_in.inc(usage.input_tokens)
        if usage.output_tokens:
            self.metrics.tokens_out.inc(usage.output_tokens)
        self._settle(usage, "ok", None, latency, later)

    def fail(self, error: ProviderError, usage: Usage | None = None, *, later: bool = False) -> bool:
        """Record a failure; True when it put the deployment in cool-down."""
        if self._close():
            return False
        latency = self.elapsed_s
        tripped = self._health.failed(self.deployment, error)
        self.metrics.requests_error.inc()
        self.metrics.error(error.kind).inc()
        if tripped:
            self.metrics.cooldowns.inc()
            log.warning("deployment %s cooling down after repeated failures (last: %s)", self.deployment.id,
                        error.kind, extra={"deployment": self.deployment.id, "error_kind": error.kind})
        self._settle(usage or Usage(), "error", error.kind, latency, later)
        return tripped

    def cancel(self, usage: Usage, *, later: bool = False) -> None:
        """The caller went away mid-stream: the tokens generated so far are still billed."""
        if self._close():
            return
        self._health.cancelled(self.deployment)
        self.metrics.requests_cancelled.inc()
        if usage.input_tokens:
            self.metrics.tokens_in.inc(usage.input_tokens)
        if usage.output_tokens:
            self.metrics.tokens_out.inc(usage.output_tokens)
        self._settle(usage, "cancelled", None, self.elapsed_s, later)

    def _close(self) -> bool:
        """True when already finished (finishing twice would double-count)."""
        if self.finished:
            return True
        self.finished = True
        self.metrics.in_flight.dec()
        return False

    def _settle(self, usage: Usage, outcome: str, error_kind: str | None, latency_s: float, later: bool) -> None:
        ttft_ms = self._first_byte * 1000.0 if self._first_byte is not None else None
        gate.settle(self.admission, usage=usage, outcome=outcome, error_kind=error_kind,
                    latency_ms=round(latency_s * 1000.0, 3), ttft_ms=None if ttft_ms is None else round(ttft_ms, 3),
                    request_id=self._request_id, batch_id=self._batch_id, later=later)
