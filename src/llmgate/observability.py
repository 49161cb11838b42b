"""Per-request plumbing: request ids, the access log line, HTTP metrics, and ``/metrics``.

This runs on every request, so it does the least it can: a header read, a clock read and three
metric updates. The access line is written when the server closes the response, so that its
duration covers the whole body (streams included); the latency histogram records the time to
the first byte for streams and the time to the response otherwise.

Per request the hooks read the request and ``g`` through their proxies once (each proxy
attribute read is a context-variable lookup), take the metric children of (route, method,
status) from a process-wide cache (``labels()`` validates and hashes its arguments under a
lock on every call), and draw request ids from ``os.urandom`` (32 hex digits, like the
``uuid4().hex`` they replace, at a fifth of the cost).
"""
from __future__ import annotations

import logging
import os
import re
import time
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import parse_qsl, urlencode

from flask import Flask, Response, g, request

from . import metrics
from .after_response import defer
from .logging import REDACTED, request_id_var

log = logging.getLogger(__name__)
access_log = logging.getLogger("llmgate.access")

REQUEST_ID_HEADER = "X-Request-ID"
UNMATCHED_ROUTE = "<unmatched>"
# A caller's id is kept only when it is short and plain, so it cannot forge log lines or headers.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# Anything else becomes OTHER: a client inventing methods must not invent metric series.
_KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_SECRET_PARAM = re.compile(r"key|token|secret|pass|auth|sig|credential|session|code", re.IGNORECASE)


def scrub_query(query: bytes) -> str:
    """The query string with the values of key-like parameters replaced."""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    return urlencode([(name, REDACTED if _SECRET_PARAM.search(name) else value) for name, value in pairs],
                     safe="[]")


class _TimeToFirstByte:
    """Wraps a streamed body: calls ``on_first`` once, when the first chunk is produced or the body closes."""

    __slots__ = ("_body", "_on_first", "_pending")

    def __init__(self, body: Iterable[bytes], on_first: Callable[[], None]):
        self._body = body
        self._on_first = on_first
        self._pending = True

    def _first(self) -> None:
        if self._pending:
            self._pending = False
            self._on_first()

    def __iter__(self) -> Iterator[bytes]:
        iterator = iter(self._body)
        for chunk in iterator:
            self._first()
            yield chunk
            break
        else:
            self._first()
            return
        yield from iterator

    def close(self) -> None:
        self._first()
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


def new_request_id() -> str:
    return os.urandom(16).hex()


# (route, method, status) → (requests counter child, latency histogram child). Like the registry,
# process-wide; bounded by the app's routes × known methods × statuses answered.
_HTTP_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _http_children(route: str, method: str, status: int) -> tuple[Any, Any]:
    key = (route, method, status)
    children = _HTTP_CHILDREN.get(key)
    if children is None:
        children = _HTTP_CHILDREN[key] = (metrics.HTTP_REQUESTS.labels(route, method, status),
                                          metrics.HTTP_LATENCY.labels(route, method, status))
    return children


def _start_request() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER)
    rid = incoming if incoming and _SANE_REQUEST_ID.fullmatch(incoming) else new_request_id()
    ctx = g._get_current_object()  # one proxy lookup, not one per attribute
    ctx.request_id = rid
    ctx.request_started = time.perf_counter()
    request_id_var.set(rid)
    metrics.HTTP_IN_FLIGHT.inc()


def _finish_request(response: Response) -> Response:
    ctx = g._get_current_object()
    started = ctx.get("request_started")
    if started is None:  # our before_request never ran (another hook failed first): nothing to close
        return response
    req = request._get_current_object()
    rid = ctx.request_id
    response.headers["x-request-id"] = rid
    rule = req.url_rule
    route = rule.rule if rule is not None else UNMATCHED_ROUTE
    method = req.method if req.method in _KNOWN_METHODS else "OTHER"
    status = response.status_code
    requests_total, latency = _http_children(route, method, status)
    requests_total.inc()

    fields: dict[str, Any] | None = None
    if access_log.isEnabledFor(logging.INFO):
        principal = ctx.get("principal")
        fields = {
            "request_id": rid, "method": req.method, "path": req.path, "route": route, "status": status,
            "remote_addr": req.remote_addr,
            "user_id": getattr(principal, "user_id", None), "key_id": getattr(principal, "key_id", None),
        }
        if req.query_string:
            fields["query"] = scrub_query(req.query_string)

    streamed = response.is_streamed and not response.direct_passthrough
    first_byte: list[float] = []
    if streamed:
        def on_first() -> None:
            elapsed = time.perf_counter() - started
            first_byte.append(elapsed)
            latency.observe(elapsed)

        response.response = _TimeToFirstByte(response.response, on_first)
    else:
        latency.observe(time.perf_counter() - started)

    def on_close() -> None:
        metrics.HTTP_IN_FLIGHT.dec()
        if fields is not None:
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            fields["duration_ms"] = duration_ms
            if first_byte:
                fields["ttfb_ms"] = round(first_byte[0] * 1000, 2)
            defer(access_log.info, "%s %s %s %.1fms", fields["method"], fields["path"], status, duration_ms,
                  extra=fields)
        request_id_var.set(None)

    response.call_on_close(on_close)
    return response


def _warn_if_unfit_for_production(app: Flask) -> None:
    # `llmgate serve` refuses to start; an app built another way (plain gunicorn, tests) is told.
    if app.config.get("LLMGATE_ENV") == "production":
        from .config import check_production_ready

        for problem in check_production_ready(app.config):
            log.warning("not ready for production: %s", problem)


def init_app(app: Flask) -> None:
    _warn_if_unfit_for_production(app)
    app.before_request(_start_request)
    app.after_request(_finish_request)
    app.add_url_rule("/metrics", "metrics", metrics.metrics_view, methods=["GET"])
