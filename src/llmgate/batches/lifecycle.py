"""A batch's life after creation: run, pause, resume, cancel, expire, finish — and the supervisor.

Status moves only by conditional updates (``WHERE status = …``), so many API processes and
workers may act at once and exactly one transition wins. The supervisor loop runs in every
worker; a short Redis lock lets one of them act per tick.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask
from sqlalchemy import func, select, update

from ..errors import Conflict
from ..extensions import db, get_redis
from ..metrics import BATCHES
from ..models.base import utcnow
from ..models.batch import FINAL_STATUSES, Batch, BatchRow
from . import control, dispatch, results

log = logging.getLogger(__name__)
SUPERVISOR_LOCK = "llmgate:batch:supervisor"


def _move(batch_id: str, from_statuses: tuple[str, ...], **values: Any) -> bool:
    changed = db.session.execute(update(Batch).where(Batch.id == batch_id, Batch.status.in_(from_statuses))
                                 .values(**values)).rowcount
    db.session.commit()
    return changed == 1


def pending_chunks(batch_id: str) -> list[int]:
    return list(db.session.execute(select(BatchRow.chunk).where(
        BatchRow.batch_id == batch_id, BatchRow.status == "pending").distinct().order_by(BatchRow.chunk)).scalars())


def schedule(batch: Batch) -> int:
    """Make sure every chunk with pending rows has a worker coming; the number enqueued."""
    if batch.status != "in_progress":
        return 0
    chunks = pending_chunks(batch.id)
    db.session.commit()
    if not chunks:
        if _move(batch.id, ("in_progress",), status="finalizing", finalizing_at=utcnow()):
            dispatch.enqueue(batch.id, "finalize")
        return 0
    return dispatch.ensure_many(batch.id, [f"chunk:{c}" for c in chunks])


# --- user actions ------------------------------------------------------------------------------------

def cancel(batch: Batch) -> Batch:
    if batch.status in ("cancelling", "cancelled"):
        return batch
    if batch.is_final:
        raise Conflict(f"Cannot cancel a batch that is {batch.status}.", code="batch_not_cancellable")
    control.request_stop(batch.id, "cancel")
    if _move(batch.id, ("validating", "in_progress", "paused", "finalizing"), status="cancelling",
             cancelling_at=utcnow()):
        dispatch.drop_queued(batch.id)
        dispatch.ensure(batch.id, "finalize")
    db.session.refresh(batch)
    return batch


def pause(batch: Batch, reason: str = "paused by user") -> Batch:
    if batch.status == "paused":
        return batch
    if batch.status != "in_progress":
        raise Conflict(f"Only a running batch can be paused; this one is {batch.status}.", code="batch_not_running")
    control.request_stop(batch.id, "pause")
    if _move(batch.id, ("in_progress",), status="paused", paused_at=utcnow(), pause_reason=reason):
        dispatch.drop_queued(batch.id)
    db.session.refresh(batch)
    return batch


def resume(batch: Batch) -> Batch:
    if batch.status == "in_progress":
        return batch
    if batch.status != "paused":
        raise Conflict(f"Only a paused batch can be resumed; this one is {batch.status}.", code="batch_not_paused")
    control.clear_stop(batch.id)
    if _move(batch.id, ("paused",), status="in_progress", pause_reason=None, paused_at=None):
        db.session.refresh(batch)
        schedule(batch)
    db.session.refresh(batch)
    return batch


# --- the end -----------------------------------------------------------------------------------------

def finalize(batch_id: str) -> Batch | None:
    """Write the result files and settle the final status; safe to run again after a crash."""
    with control.hold(batch_id, "finalize") as lease:
        if lease is None:
            return None
        batch = db.session.get(Batch, batch_id)
        if batch is None or batch.status not in ("finalizing", "cancelling"):
            return batch
        if batch.status == "cancelling" and any(t.startswith("chunk:") for t in control.held_tasks(batch_id)):
            return batch  # rows still landing: the supervisor calls again
        ending = {"cancelling": "cancelled"}.get(batch.status) or (batch.options or {}).get("ending") or "completed"
        # Recount from the rows: the counters are exact, but this also covers a hand-edited table.
        counts = dict(db.session.execute(select(BatchRow.status, func.count()).where(
            BatchRow.batch_id == batch_id).group_by(BatchRow.status)).all())
        if batch.kind == "openai":
            output_id, error_id = results.write_openai_outputs(batch, ending)
        else:
            output_id, error_id = results.write_table(batch, "csv", ending), None
        now = utcnow()
        db.session.execute(update(Batch).where(Batch.id == batch_id).values(
            status=ending, output_file_id=output_id, error_file_id=error_id,
            completed=counts.get("done", 0), failed=counts.get("failed", 0) + (
                counts.get("pending", 0) if ending != "completed" else 0),
            **{f"{ending}_at": now}))
        db.session.commit()
        control.forget(batch_id)
        BATCHES.labels(batch.kind, ending).inc()
        db.session.refresh(batch)
    if batch.webhook_url:
        dispatch.enqueue(batch_id, "webhook")
    return batch


def expire(batch: Batch) -> None:
    control.request_stop(batch.id, "cancel")
    options = dict(batch.options or {}, ending="expired")
    if _move(batch.id, ("in_progress", "paused", "validating"), status="finalizing", finalizing_at=utcnow(),
             options=options):
        dispatch.ensure(batch.id, "finalize")


# --- the supervisor ----------------------------------------------------------------------------------

def supervise_once() -> None:
    now = utcnow()
    active = list(db.session.execute(select(Batch).where(Batch.status.not_in(FINAL_STATUSES))).scalars())
    db.session.commit()
    recheck_s = control.setting("BATCH_BUDGET_RECHECK_S", 60.0)
    for batch in active:
        try:
            if batch.status in ("in_progress", "paused") and batch.expires_at and batch.expires_at <= now:
                expire(batch)
            elif batch.status == "validating":
                dispatch.ensure(batch.id, "ingest")
            elif batch.status == "in_progress":
                schedule(batch)
            elif batch.status in ("finalizing", "cancelling"):
                dispatch.ensure(batch.id, "finalize")
            elif (batch.status == "paused" and (batch.pause_reason or "").startswith("budget")
                  and batch.paused_at and (now - batch.paused_at).total_seconds() >= recheck_s):
                # Budgets reset with their period: try again; the first row pauses it anew if still spent.
                resume(batch)
        except Exception:
            db.session.rollback()
            log.exception("batch supervision failed", extra={"batch_id": batch.id})


def supervisor_loop(app: Flask, stop: threading.Event) -> None:
    interval = float(app.config.get("BATCH_SUPERVISE_S", 2.0))
    while not stop.wait(interval):
        with app.app_context():
            try:
                # One supervisor acts per tick across all workers; the lock outlives a crashed holder briefly.
                if get_redis().set(SUPERVISOR_LOCK, "1", nx=True, px=int(interval * 1000 * 0.9)):
                    supervise_once()
            except Exception:
                log.exception("batch supervisor tick failed")
            finally:
                db.session.remove()
