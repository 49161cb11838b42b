"""Usage ledger, pricing, budgets, rate limits and reports.

``gate`` is the hot path (admit/settle around every upstream call); ``drain`` moves usage
events from Redis to the ledger in the worker; ``reports`` reads the rollups back.
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import slots
    from .drain import drain_loop

    app.extensions.setdefault("llmgate.worker_loops", []).append(drain_loop)
    slots.init_app(app)
