"""RQ jobs for batches: thin — load ids, call a service, return a small summary.

Run by ``llmgate worker`` (queue ``batches``) inside an app context.
"""
from __future__ import annotations

import functools

from ..extensions import db
from ..models.batch import Batch
from . import ingest as ingest_service
from . import lifecycle, owners, runner, webhook


def _job(fn):
    """Give the session back when the job ends. (Durations are recorded for every job by
    ``llmgate.worker``, as ``llmgate_job_duration_seconds``.)"""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            db.session.remove()

    return run


@_job
def ingest(batch_id: str) -> dict:
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


@_job
def run_chunk(batch_id: str, chunk: int) -> dict:
    outcome = runner.run_chunk(batch_id=batch_id, chunk=chunk)
    if outcome.stopped is None:
        batch = db.session.get(Batch, batch_id)
        if batch is not None:
            lifecycle.schedule(batch)  # finalises when this was the last chunk
    return {"written": outcome.written, "stopped": outcome.stopped}


@_job
def finalize(batch_id: str) -> dict:
    batch = lifecycle.finalize(batch_id)
    return {"status": batch.status if batch else None}


@_job
def send_webhook(batch_id: str) -> dict:
    batch = db.session.get(Batch, batch_id)
    return {"sent": bool(batch and batch.webhook_url and webhook.send(batch))}
