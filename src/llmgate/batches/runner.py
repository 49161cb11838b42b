"""Running one chunk of a batch: bounded concurrency, results recorded as they land.

Rows of the chunk go to a thread pool (``min(model max_concurrency, BATCH_CONCURRENCY)``
threads). Finished rows are written with ``UPDATE … WHERE status = 'pending'`` and committed in
small groups together with the batch's counters, so a worker killed at any moment loses only
the rows in flight, and a row can never get two results even if two workers race on it.
The stop flag (cancel / pause) is read between rows; a spent budget pauses the batch.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from ..errors import Forbidden, QuotaExceeded
from ..extensions import db
from ..gateway.catalog import get_catalog
from ..metrics import BATCH_ROWS
from ..models.base import utcnow
from ..models.batch import Batch, BatchRow
from . import control, owners, rows

log = logging.getLogger(__name__)


@dataclass
class ChunkOutcome:
    written: int = 0
    stopped: str | None = None  # why the chunk stopped early: cancel | pause | lease_lost | status


def concurrency_for(batch: Batch) -> int:
    setting = control.setting("BATCH_CONCURRENCY", 32)
    limits = [d.limits.max_concurrency for d in get_catalog().deployments(_model_of(batch)) if d.limits.max_concurrency]
    return max(1, min([setting] + ([sum(limits)] if limits else [])))


def _model_of(batch: Batch) -> str:
    if batch.model:
        return batch.model
    first = db.session.execute(select(BatchRow.input).where(BatchRow.batch_id == batch.id).limit(1)).scalar()
    return (first or {}).get("model", "")


class _Recorder:
    """Buffers finished rows and commits them (rows + batch counters) in small groups."""

    def __init__(self, batch: Batch):
        self.batch_id, self.kind = batch.id, batch.kind
        self.group = control.setting("BATCH_COMMIT_ROWS", 25)
        self.every_s = control.setting("BATCH_COMMIT_S", 0.5)
        self.buffer: list[tuple[int, str, dict[str, Any]]] = []
        self.last = time.monotonic()
        self.written = 0

    def add(self, row_id: int, status: str, result: dict[str, Any]) -> None:
        self.buffer.append((row_id, status, result))
        if len(self.buffer) >= self.group or time.monotonic() - self.last >= self.every_s:
            self.flush()

    def flush(self) -> None:
        self.last = time.monotonic()
        if not self.buffer:
            return
        done = failed = tokens_in = tokens_out = 0
        cost = 0.0
        for row_id, status, result in self.buffer:
            changed = db.session.execute(
                update(BatchRow).where(BatchRow.id == row_id, BatchRow.status == "pending")
                .values(status=status, result=result)).rowcount
            if changed != 1:
                continue  # another worker recorded this row first: its result stands
            done += status == "done"
            failed += status == "failed"
            tokens_in += int(result.get("input_tokens") or 0)
            tokens_out += int(result.get("output_tokens") or 0)
            cost += float(result.get("cost") or 0.0)
        if done or failed:
            db.session.execute(update(Batch).where(Batch.id == self.batch_id).values(
                completed=Batch.completed + done, failed=Batch.failed + failed,
                input_tokens=Batch.input_tokens + tokens_in, output_tokens=Batch.output_tokens + tokens_out,
                cost_usd=Batch.cost_usd + cost))
        db.session.commit()
        self.buffer.clear()
        if done or failed:
            self.written += done + failed
            control.record_tick(self.batch_id, done + failed)
            BATCH_ROWS.labels(self.kind, "done").inc(done)
            BATCH_ROWS.labels(self.kind, "failed").inc(failed)


def pause(batch_id: str, reason: str) -> None:
    """Pause a running batch on the worker's own initiative (a spent budget, a revoked key)."""
    now = utcnow()
    db.session.execute(update(Batch).where(Batch.id == batch_id, Batch.status == "in_progress").values(
        status="paused", paused_at=now, pause_reason=reason))
    db.session.commit()
    control.request_stop(batch_id, "pause")


def run_chunk(*, batch_id: str, chunk: int) -> ChunkOutcome:
    outcome = ChunkOutcome()
    with control.hold(batch_id, f"chunk:{chunk}") as lease:
        if lease is None:
            return ChunkOutcome(stopped="leased")
        batch = db.session.get(Batch, batch_id)
        if batch is None or batch.status != "in_progress":
            return ChunkOutcome(stopped="status")
        pending = db.session.execute(
            select(BatchRow.id, BatchRow.input).where(
                BatchRow.batch_id == batch_id, BatchRow.chunk == chunk, BatchRow.status == "pending")
            .order_by(BatchRow.position)).all()
        db.session.commit()  # end the read transaction: rows are written in their own
        if not pending:
            return outcome
        try:
            principal = owners.principal_of(batch)
        except Forbidden as error:
            pause(batch_id, f"owner: {error.message}")
            return ChunkOutcome(stopped="pause")
        app = current_app._get_current_object()
        recorder = _Recorder(batch)
        flag = control.StopFlag(batch_id)
        kind, endpoint, model, options = batch.kind, batch.endpoint, batch.model, dict(batch.options or {})

        def stopped() -> bool:
            return bool(flag.value()) or lease.lost.is_set()

        def execute(row_input: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            with app.app_context():
                while True:
                    try:
                        if kind == "openai":
                            return rows.run_request(principal=principal, batch_id=batch_id, endpoint=endpoint,
                                                    body=row_input)
                        return rows.run_tabular(principal=principal, batch_id=batch_id, model=model,
                                                options=options, cells=row_input)
                    except rows.RetryLater as later:
                        rows.backoff(later.seconds, stopped)
                        if stopped():
                            raise

        queue = list(pending)
        in_flight: dict[Future, int] = {}
        with ThreadPoolExecutor(max_workers=concurrency_for(batch), thread_name_prefix=f"batch-{chunk}") as pool:
            size = pool._max_workers
            while queue or in_flight:
                while queue and len(in_flight) < size and not stopped():
                    row_id, row_input = queue.pop(0)
                    in_flight[pool.submit(execute, row_input)] = row_id
                if not in_flight:
                    break
                finished, _ = wait(list(in_flight), timeout=recorder.every_s, return_when=FIRST_COMPLETED)
                for future in finished:
                    row_id = in_flight.pop(future)
                    try:
                        status, result = future.result()
                    except QuotaExceeded as error:
                        if not flag.local:
                            flag.local = "pause"
                            pause(batch_id, f"budget: {error.message}")
                        continue  # the row stays pending for when the batch resumes
                    except rows.RetryLater:
                        continue
                    except Exception as error:  # a bug must cost one row, not the chunk
                        log.exception("batch row crashed", extra={"batch_id": batch_id})
                        status, result = "failed", {"error": f"internal error: {type(error).__name__}",
                                                    "status_code": 500}
                    recorder.add(row_id, status, result)
                if not finished:
                    recorder.flush()
        recorder.flush()
        outcome.written = recorder.written
        outcome.stopped = flag.value() or ("lease_lost" if lease.lost.is_set() else None)
    return outcome
