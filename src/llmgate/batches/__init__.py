"""Files, OpenAI-style batches and tabular batches run by RQ workers.

``init_app`` registers ``/v1/files`` + ``/v1/batches``, the signed download route, and the
batch supervisor as a worker loop. See docs/batches.md for the design.
"""
from __future__ import annotations

from flask import Flask

WORKER_LOOPS = "llmgate.worker_loops"


def init_app(app: Flask) -> None:
    from . import downloads, lifecycle, v1

    app.register_blueprint(v1.bp)
    app.register_blueprint(downloads.bp)
    app.extensions.setdefault(WORKER_LOOPS, []).append(lifecycle.supervisor_loop)
