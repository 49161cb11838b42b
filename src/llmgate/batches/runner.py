"""Running one chunk of a batch: bounded concurrency, results recorded as they land.

Rows of the chunk go to a thread pool (the model's ``max_concurrency`` capped by
``BATCH_MAX_CONCURRENCY``, else ``BATCH_CONCURRENCY`` threads); when its queue runs low the job
leases the batch's next pending chunk and keeps the pool full. Finished rows are written with a
conditional update (``… WHERE status = 'pending'``, one statement per flush) and committed in
small groups together with the batch's counters, so a worker killed at any moment loses only
the rows in flight, and a row can never get two results even if two workers race on it.
The stop flag (cancel / pause) is read between rows; a spent budget pauses the batch.
"""
from __future__ import annotations

import json
import logging
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, select, text, update

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
    """Threads for the batch's rows: the model's ``max_concurrency`` (summed over its pool) when it
    has one, capped by ``BATCH_MAX_CONCURRENCY``; ``BATCH_CONCURRENCY`` for a model without one."""
    limits = [d.limits.max_concurrency for d in get_catalog().deployments(_model_of(batch)) if d.limits.max_concurrency]
    if limits:
        return max(1, min(sum(limits), control.setting("BATCH_MAX_CONCURRENCY", 128)))
    return max(1, control.setting("BATCH_CONCURRENCY", 32))


def _model_of(batch: Batch) -> str:
    if batch.model:
        return batch.model
    first = db.session.execute(select(BatchRow.input).where(BatchRow.batch_id == batch.id).limit(1)).scalar()
    return (first or {}).get("model", "")


# One fixed statement text for any number of rows (arrays, not a VALUES list of N tuples), so
# SQLAlchemy compiles it once and PostgreSQL can keep it prepared: with VALUES the statement was
# compiled again at every flush (60 % of the flush's time in py-spy).
_PG_RECORD = text(
    "UPDATE batch_rows AS r SET status = v.status, result = v.result"
    " FROM unnest(CAST(:ids AS BIGINT[]), CAST(:statuses AS VARCHAR[]), CAST(:results AS JSON[]))"
    " AS v(id, status, result)"
    " WHERE r.id = v.id AND r.status = 'pending' RETURNING r.id")
_RECORD_ONE = (update(BatchRow.__table__)
               .where(BatchRow.__table__.c.id == bindparam("row_id"), BatchRow.__table__.c.status == "pending")
               .values(status=bindparam("new_status"), result=bindparam("new_result", type_=BatchRow.result.type)))


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
        recorded = self._write_rows()
        for row_id, status, result in self.buffer:
            if row_id not in recorded:
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

    def _write_rows(self) -> set[int]:
        """Write the buffered results of rows still pending; the ids this transaction wrote.

        PostgreSQL: one ``UPDATE … FROM unnest(ids, statuses, results) WHERE status = 'pending'
        RETURNING id`` (a VALUES list, but one statement text whatever the row count).
        Elsewhere (SQLite): one executemany of the conditional update; when its total rowcount
        says a row was already taken (another worker raced us), it is redone row by row to learn
        which ones — the first UPDATE holds SQLite's write lock until commit, so nothing moves
        in between. Either way only rows this transaction moved out of ``pending`` count.
        """
        ids = [row_id for row_id, _, _ in self.buffer]
        if db.session.get_bind().dialect.name == "postgresql":
            return set(db.session.execute(_PG_RECORD, {
                "ids": ids, "statuses": [status for _, status, _ in self.buffer],
                "results": [json.dumps(result) for _, _, result in self.buffer]}).scalars())
        params = [{"row_id": row_id, "new_status": status, "new_result": result} for row_id, status, result in self.buffer]
        if db.session.execute(_RECORD_ONE, params).rowcount == len(params):
            return set(ids)
        db.session.rollback()
        return {p["row_id"] for p in params if db.session.execute(_RECORD_ONE, p).rowcount == 1}


def pause(batch_id: str, reason: str) -> None:
    """Pause a running batch on the worker's own initiative (a spent budget, a revoked key)."""
    now = utcnow()
    db.session.execute(update(Batch).where(Batch.id == batch_id, Batch.status == "in_progress").values(
        status="paused", paused_at=now, pause_reason=reason))
    db.session.commit()
    control.request_stop(batch_id, "pause")


def _pending_rows(batch_id: str, chunk: int) -> list[tuple[int, dict[str, Any]]]:
    found = db.session.execute(
        select(BatchRow.id, BatchRow.input).where(
            BatchRow.batch_id == batch_id, BatchRow.chunk == chunk, BatchRow.status == "pending")
        .order_by(BatchRow.position)).all()
    db.session.commit()  # end the read transaction: rows are written in their own
    return [(row_id, row_input) for row_id, row_input in found]


def _next_pending_chunk(batch_id: str, after: int) -> int | None:
    found = db.session.execute(select(BatchRow.chunk).where(
        BatchRow.batch_id == batch_id, BatchRow.chunk > after, BatchRow.status == "pending")
        .order_by(BatchRow.chunk).limit(1)).scalar()
    db.session.commit()
    return found


def run_chunk(*, batch_id: str, chunk: int) -> ChunkOutcome:
    """Run the pending rows of ``chunk``, then of the batch's next chunks while the pool has room.

    So that the thread pool never drains at a chunk boundary, the job takes the lease of the next
    pending chunk (up to ``BATCH_CHAIN_CHUNKS`` more) when fewer rows are queued than threads
    run. Each chunk's lease is held until all its rows are committed (then released), so a
    worker killed at any moment leaves chunks that are leaseless within a lease TTL, which the
    supervisor hands to another worker; the chunk's own queued job, when it runs, finds the
    lease taken or no pending rows and ends at once.
    """
    first = control.acquire(batch_id, f"chunk:{chunk}")
    if first is None:
        return ChunkOutcome(stopped="leased")
    leases: dict[int, control.Lease] = {chunk: first}
    try:
        return _run_chunks(batch_id, chunk, leases)
    finally:
        for lease in leases.values():
            lease.release()


def _run_chunks(batch_id: str, chunk: int, leases: dict[int, control.Lease]) -> ChunkOutcome:
    outcome = ChunkOutcome()
    batch = db.session.get(Batch, batch_id)
    if batch is None or batch.status != "in_progress":
        return ChunkOutcome(stopped="status")
    pending = _pending_rows(batch_id, chunk)
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
    chain_left = max(0, control.setting("BATCH_CHAIN_CHUNKS", 20))

    def lease_lost() -> bool:
        return any(lease.lost.is_set() for lease in list(leases.values()))

    def stopped() -> bool:
        return bool(flag.value()) or lease_lost()

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

    queue: deque[tuple[int, int, dict[str, Any]]] = deque((chunk, row_id, row_input) for row_id, row_input in pending)
    unfinished = {chunk: len(pending)}  # rows of each held chunk not yet recorded
    cursor = chunk  # chunks up to here were tried

    def claim_next() -> bool:
        """Take the lease of the next pending chunk and queue its rows; False when there is none."""
        nonlocal cursor
        for _ in range(8):  # chunks leased by other workers are skipped, a few at a time
            candidate = _next_pending_chunk(batch_id, cursor)
            if candidate is None:
                return False
            cursor = candidate
            lease = control.acquire(batch_id, f"chunk:{candidate}")
            if lease is None:
                continue
            found = _pending_rows(batch_id, candidate)
            if not found:
                lease.release()
                continue
            leases[candidate] = lease
            unfinished[candidate] = len(found)
            queue.extend((candidate, row_id, row_input) for row_id, row_input in found)
            return True
        return True  # all busy so far: look further next time

    def row_done(chunk_no: int, recorded: bool) -> None:
        if not recorded:
            unfinished[chunk_no] = -1  # a row stays pending: keep the lease until the job ends
        elif unfinished[chunk_no] > 0:
            unfinished[chunk_no] -= 1
            if unfinished[chunk_no] == 0 and chunk_no in leases:
                recorder.flush()  # its last rows are committed before anyone may take the chunk
                leases.pop(chunk_no).release()

    in_flight: dict[Future, tuple[int, int]] = {}
    with ThreadPoolExecutor(max_workers=concurrency_for(batch), thread_name_prefix=f"batch-{chunk}") as pool:
        size = pool._max_workers
        while queue or in_flight:
            if chain_left and len(queue) < size and not stopped():
                if claim_next():
                    chain_left -= 1
                else:
                    chain_left = 0
            while queue and len(in_flight) < size and not stopped():
                chunk_no, row_id, row_input = queue.popleft()
                in_flight[pool.submit(execute, row_input)] = (chunk_no, row_id)
            if not in_flight:
                break
            finished, _ = wait(list(in_flight), timeout=recorder.every_s, return_when=FIRST_COMPLETED)
            for future in finished:
                chunk_no, row_id = in_flight.pop(future)
                try:
                    status, result = future.result()
                except QuotaExceeded as error:
                    if not flag.local:
                        flag.local = "pause"
                        pause(batch_id, f"budget: {error.message}")
                    row_done(chunk_no, False)
                    continue  # the row stays pending for when the batch resumes
                except rows.RetryLater:
                    row_done(chunk_no, False)
                    continue
                except Exception as error:  # a bug must cost one row, not the chunk
                    log.exception("batch row crashed", extra={"batch_id": batch_id})
                    status, result = "failed", {"error": f"internal error: {type(error).__name__}",
                                                "status_code": 500}
                recorder.add(row_id, status, result)
                row_done(chunk_no, True)
            if not finished:
                recorder.flush()
    recorder.flush()
    outcome.written = recorder.written
    outcome.stopped = flag.value() or ("lease_lost" if lease_lost() else None)
    return outcome
