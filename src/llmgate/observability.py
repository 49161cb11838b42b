"""Per-request plumbing: request ids, the access log line and HTTP metrics."""
from __future__ import annotations

import logging
import time
import uuid

from flask import Flask, g, request

from .logging import request_id_var

access_log = logging.getLogger("llmgate.access")


def _start_request() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    # Keep a caller's id when it is sane; never echo arbitrary bytes into logs and headers.
    rid = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else uuid.uuid4().hex
    g.request_id = rid
    g.request_started = time.perf_counter()
    request_id_var.set(rid)


def _finish_request(response):
    response.headers["x-request-id"] = g.get("request_id", "")
    return response


def init_app(app: Flask) -> None:
    app.before_request(_start_request)
    app.after_request(_finish_request)
