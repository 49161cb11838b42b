"""Files, OpenAI-style batches and tabular batches run by RQ workers.

``init_app`` registers ``/v1/files`` + ``/v1/batches`` and the batch supervisor as a worker
loop (``/api/batches``, signed downloads included, is in ``llmgate.api.batches``). See docs/batches.md for the design.
"""
from __future__ import annotations

from flask import Flask

WORKER_LOOPS = "llmgate.worker_loops"


def init_app(app: Flask) -> None:
    from . import lifecycle, v1

    app.register_blueprint(v1.bp)
    app.extensions.setdefault(WORKER_LOOPS, []).append(lifecycle.supervisor_loop)
