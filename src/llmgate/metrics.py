"""Every Prometheus metric llmgate exports, in one place, and the ``/metrics`` view.

Under gunicorn the ``PROMETHEUS_MULTIPROC_DIR`` environment variable switches
prometheus_client to multiprocess mode (set by ``llmgate.gunicorn_conf`` before the workers
fork); the ``/metrics`` view then aggregates the files of all workers. Gauges declare how they
aggregate across processes. ``LLMGATE_METRICS_TOKEN``, when set, is required as a bearer token.

``/metrics`` also adds the metrics of the ``llmgate worker`` processes that share the API's
instance (or metrics) folder, each sample labelled ``origin="worker"``: their folders, and how
they are read, are in ``llmgate.worker_metrics``.
"""
from __future__ import annotations

import hmac
import os

from flask import Response, current_app, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, exposition, multiprocess, values

from .worker_metrics import ROOT_LOCK, Combined, WorkerCollector, worker_metrics_root

# --- multiprocess mode: which files this process writes ----------------------------------------
# Must run before the first metric below is created: prometheus_client picks the value class of a
# metric when it creates it.
_identity: str | None = None  # a work horse's, see llmgate.worker_metrics.use_process_identity


def _process_identifier() -> int | str:
    return _identity or os.getpid()


def _install_value_class() -> None:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    value_class = values.MultiProcessValue(process_identifier=_process_identifier)
    values.ValueClass = value_class
    # All values of a process share one lock. A worker forks a horse per job while its loop
    # threads update metrics; a fork taken while a thread holds the lock would leave the horse
    # blocked for ever on its first metric. Take the lock around every fork.
    closure = dict(zip(value_class.inc.__code__.co_freevars, value_class.inc.__closure__ or ()))
    lock = closure["lock"].cell_contents if "lock" in closure else None
    if lock is not None and hasattr(lock, "acquire"):
        os.register_at_fork(before=lock.acquire, after_in_parent=lock.release, after_in_child=lock.release)


_install_value_class()


_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

# --- HTTP (every request) ---------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "llmgate_http_requests_total", "HTTP requests answered.", ["route", "method", "status"])
HTTP_LATENCY = Histogram(
    "llmgate_http_request_duration_seconds", "Time to answer an HTTP request (to the first byte for streams).",
    ["route", "method", "status"], buckets=_LATENCY_BUCKETS)
HTTP_IN_FLIGHT = Gauge(
    "llmgate_http_requests_in_flight", "HTTP requests being handled.", multiprocess_mode="livesum")

# --- Gateway (one upstream call) ------------------------------------------------------------
_UPSTREAM = ["model", "deployment", "provider"]
UPSTREAM_REQUESTS = Counter(
    "llmgate_upstream_requests_total", "Upstream calls by outcome.", _UPSTREAM + ["outcome"])
UPSTREAM_ERRORS = Counter(
    "llmgate_upstream_errors_total", "Upstream call failures by error kind.", _UPSTREAM + ["kind"])
UPSTREAM_RETRIES = Counter("llmgate_upstream_retries_total", "Upstream calls retried.", _UPSTREAM)
UPSTREAM_FALLBACKS = Counter(
    "llmgate_fallbacks_total", "Requests that fell back to another model.", ["model", "fallback"])
UPSTREAM_COOLDOWNS = Counter(
    "llmgate_cooldowns_total", "Deployments put in cool-down after repeated failures.", _UPSTREAM)
UPSTREAM_LATENCY = Histogram(
    "llmgate_upstream_latency_seconds", "Upstream call duration.", _UPSTREAM, buckets=_LATENCY_BUCKETS)
UPSTREAM_TTFT = Histogram(
    "llmgate_time_to_first_token_seconds", "Time to the first streamed token.", _UPSTREAM,
    buckets=_LATENCY_BUCKETS)
UPSTREAM_TOKENS = Counter(
    "llmgate_upstream_tokens_total", "Tokens through upstream calls.", _UPSTREAM + ["direction"])
UPSTREAM_IN_FLIGHT = Gauge(
    "llmgate_upstream_in_flight", "Upstream calls in flight.", _UPSTREAM, multiprocess_mode="livesum")

# --- Accounting -------------------------------------------------------------------------------
USAGE_TOKENS = Counter("llmgate_tokens_total", "Tokens counted, by model and key.", ["model", "key", "direction"])
USAGE_COST = Counter("llmgate_cost_usd_total", "Cost counted in USD, by model and key.", ["model", "key"])
BUDGET_REMAINING = Gauge(
    "llmgate_budget_remaining_usd", "Budget left in the current period.", ["scope", "owner", "period"],
    multiprocess_mode="mostrecent")
RATE_LIMITED = Counter("llmgate_rate_limited_total", "Requests refused by a limit.", ["limit", "scope"])
USAGE_EVENTS_WRITTEN = Counter("llmgate_usage_events_written_total", "Usage events committed to the database.")
USAGE_EVENTS_LOST = Counter(
    "llmgate_usage_events_lost_total", "Usage events that could not be appended to Redis (logged instead).")
USAGE_EVENTS_PENDING = Gauge(
    "llmgate_usage_events_pending", "Usage events waiting in Redis for the database.", multiprocess_mode="mostrecent")
BUDGET_SOFT_LIMIT = Counter(
    "llmgate_budget_soft_limit_reached_total", "Budgets that crossed their soft limit.", ["scope", "period"])

# --- Batches ----------------------------------------------------------------------------------
BATCH_ROWS = Counter("llmgate_batch_rows_total", "Batch rows finished, by outcome.", ["kind", "outcome"])
BATCHES = Counter("llmgate_batches_total", "Batches that reached a final status.", ["kind", "status"])
JOB_DURATION = Histogram("llmgate_job_duration_seconds", "Background job duration.", ["task", "outcome"],
                         buckets=(0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 1800))

# --- Processes --------------------------------------------------------------------------------
# One series per live process (the pid label is added in multiprocess mode); a dead worker's
# series goes away when gunicorn's child_exit hook marks it dead.
PROCESS_START = Gauge(
    "llmgate_process_start_time_seconds", "When this API or worker process started (Unix time).", ["kind"],
    multiprocess_mode="liveall")


# --- /metrics ---------------------------------------------------------------------------------

def collect_registry() -> CollectorRegistry:
    """The registry to expose: every process's files in multiprocess mode, else this process."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return registry


def _exposed(app):
    """This API's metrics, plus those of the workers that share its instance (or metrics) folder."""
    root = worker_metrics_root(app.instance_path, app.config.get("METRICS_DIR"))
    if not (root / ROOT_LOCK).exists():  # no worker ever ran here
        return collect_registry()
    return Combined(collect_registry(), WorkerCollector(root=root))


def metrics_view() -> Response:
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        supplied = request.headers.get("Authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
            from .errors import Unauthorized

            raise Unauthorized("/metrics needs `Authorization: Bearer <LLMGATE_METRICS_TOKEN>`.",
                               headers={"WWW-Authenticate": "Bearer"})
    encoder, content_type = exposition.choose_encoder(request.headers.get("Accept", ""))
    return Response(encoder(_exposed(current_app)), content_type=content_type)
