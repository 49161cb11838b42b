"""Putting batch tasks on the ``batches`` queue, and telling whether a task still needs a worker.

Every enqueue gets a fresh job id remembered per task, so the supervisor can ask RQ what became
of it: queued → wait; started but its lease is gone for longer than a lease TTL → the worker
died, enqueue again; finished, failed or missing while work remains → enqueue again.
"""
from __future__ import annotations

import secrets
import time

from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from ..extensions import get_queue, get_redis
from . import control

JOBS = {"ingest": "llmgate.batches.jobs.ingest", "finalize": "llmgate.batches.jobs.finalize",
        "webhook": "llmgate.batches.jobs.send_webhook", "chunk": "llmgate.batches.jobs.run_chunk"}
_WAITING = {JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


def enqueue(batch_id: str, task: str) -> str:
    kind, _, arg = task.partition(":")
    args = (batch_id, int(arg)) if kind == "chunk" else (batch_id,)
    job_id = f"llmgate-batch-{batch_id}-{task.replace(':', '-')}-{secrets.token_hex(4)}"
    control.remember_job(batch_id, task, job_id)
    # Finishing comes first: a cancelled batch must not wait behind its own queued chunks.
    get_queue("batches").enqueue(JOBS[kind], *args, job_id=job_id, at_front=kind in ("finalize", "webhook"),
                                 job_timeout=int(control.setting("BATCH_JOB_TIMEOUT_S", 6 * 3600)),
                                 result_ttl=600, failure_ttl=86400, description=f"batch {batch_id} {task}")
    return job_id


def needs_worker(batch_id: str, task: str) -> bool:
    """True when nobody is on ``task`` or going to be: no live lease, no waiting job."""
    if control.is_held(batch_id, task):
        return False
    job_id = control.job_for(batch_id, task)
    if job_id is None:
        return True
    try:
        job = Job.fetch(job_id, connection=get_redis())
        status = job.get_status(refresh=True)
    except NoSuchJobError:
        return True
    if status in _WAITING:
        return False
    if status == JobStatus.STARTED:
        # Started but holding no lease: either it is just taking it, or its worker is dead.
        started = job.started_at.timestamp() if job.started_at else 0
        return time.time() - started > 2 * control.lease_ttl()
    return True


def ensure_many(batch_id: str, tasks: list[str]) -> int:
    """``ensure`` for many tasks in a few round trips (a million-row batch has thousands of chunks)."""
    held = set(control.held_tasks(batch_id))
    jobs = {k.decode(): v.decode() for k, v in get_redis().hgetall(control.jobs_key(batch_id)).items()}
    unleased = [t for t in tasks if t not in held]
    known = [t for t in unleased if t in jobs]
    fetched = dict(zip(known, Job.fetch_many([jobs[t] for t in known], connection=get_redis()))) if known else {}
    enqueued = 0
    for task in unleased:
        job = fetched.get(task)
        if job is not None:
            status = job.get_status(refresh=False)
            if status in _WAITING:
                continue
            if status == JobStatus.STARTED and job.started_at and \
                    time.time() - job.started_at.timestamp() <= 2 * control.lease_ttl():
                continue
        enqueue(batch_id, task)
        enqueued += 1
    return enqueued


def ensure(batch_id: str, task: str) -> bool:
    if needs_worker(batch_id, task):
        enqueue(batch_id, task)
        return True
    return False


def drop_queued(batch_id: str) -> int:
    """Take the batch's waiting chunk jobs off the queue (after cancel or pause); how many."""
    queue, redis = get_queue("batches"), get_redis()
    dropped = 0
    for task, job_id in redis.hgetall(control.jobs_key(batch_id)).items():
        if task.decode().startswith("chunk:") and queue.remove(job_id.decode()):
            redis.hdel(control.jobs_key(batch_id), task)  # so that resume enqueues it afresh
            dropped += 1
    return dropped
