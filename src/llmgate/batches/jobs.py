"""RQ jobs for batches: thin — load ids, call a service, return a small summary.

Run by ``llmgate worker`` (queue ``batches``) inside an app context.
"""
from __future__ import annotations

import time

from ..extensions import db
from ..metrics import JOB_DURATION
from ..models.batch import Batch
from . import ingest as ingest_service
from . import lifecycle, owners, runner, webhook


def _timed(name: str, fn, *args, **kwargs):
    started = time.monotonic()
    outcome = "error"
    try:
        value = fn(*args, **kwargs)
        outcome = "ok"
        return value
    finally:
        JOB_DURATION.labels(name, outcome).observe(time.monotonic() - started)
        db.session.remove()


def ingest(batch_id: str) -> dict:
    def work():
        batch = db.session.get(Batch, batch_id)
        if batch is None:
            return {"status": "missing"}
        try:
            principal = owners.principal_of(batch) if batch.kind == "openai" else None
        except Exception:
            principal = None  # the rows fail later, each with the owner's error
        with lifecycle.control.hold(batch_id, "ingest") as lease:
            if lease is None:
                return {"status": "busy"}
            batch = ingest_service.ingest(batch_id=batch_id, principal=principal)
        if batch is not None and batch.status == "in_progress":
            lifecycle.schedule(batch)
        elif batch is not None and batch.status == "failed" and batch.webhook_url:
            lifecycle.dispatch.enqueue(batch_id, "webhook")
        return {"status": batch.status if batch else "missing", "rows": batch.total if batch else 0}
    return _timed("batch_ingest", work)


def run_chunk(batch_id: str, chunk: int) -> dict:
    def work():
        outcome = runner.run_chunk(batch_id=batch_id, chunk=chunk)
        if outcome.stopped is None:
            batch = db.session.get(Batch, batch_id)
            if batch is not None:
                lifecycle.schedule(batch)  # finalises when this was the last chunk
        return {"written": outcome.written, "stopped": outcome.stopped}
    return _timed("batch_chunk", work)


def finalize(batch_id: str) -> dict:
    def work():
        batch = lifecycle.finalize(batch_id)
        return {"status": batch.status if batch else None}
    return _timed("batch_finalize", work)


def send_webhook(batch_id: str) -> dict:
    def work():
        batch = db.session.get(Batch, batch_id)
        return {"sent": bool(batch and batch.webhook_url and webhook.send(batch))}
    return _timed("batch_webhook", work)
