"""Background work: RQ workers whose jobs run inside the app context, and the worker loops.

``llmgate worker`` runs :func:`run` (one worker process) or :func:`supervise` (``--count N``).
Each job runs in a work horse forked by RQ, inside ``app.app_context()``; the horse drops the
database connections it inherited, so no connection is ever used by two processes. Before the
first fork the worker imports what jobs need (:func:`preload`: the provider SDKs of models.yaml,
the batch jobs, pandas), so horses inherit those modules instead of importing them per job.

A feature that needs a loop beside the jobs (the usage drainer, the batch supervisor) registers
it in its ``init_app`` with :func:`register_worker_loop`. A loop is ``fn(app, stop_event)``:
it runs in a daemon thread inside an app context for as long as the worker lives, must return
soon after ``stop_event`` is set (wait on it instead of sleeping), and must be safe to run in
many worker processes at once. A loop that raises, or returns before it is asked to stop, is
logged and restarted after a back-off.

Metrics: ``llmgate worker`` is always a small supervisor (:func:`supervise`) over its worker
processes, because prometheus_client must be in multiprocess mode before ``llmgate.metrics`` is
first imported, and the command line has imported it by the time a command runs. The supervisor
makes a fresh metrics folder (``llmgate.worker_metrics.WorkerMetricsFolder``), starts each worker
with ``PROMETHEUS_MULTIPROC_DIR`` pointing there, clears the live gauges of a worker that exits,
and can serve the folder itself (``--metrics-bind``). A worker records the duration and outcome of
every job it runs (``llmgate_job_duration_seconds``), whatever the job function does.
"""
from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from flask import Flask
from prometheus_client.multiprocess import mark_process_dead
from rq import Queue, Worker
from rq.exceptions import InvalidJobOperation, StopRequested
from rq.job import JobStatus
from sqlalchemy.orm import configure_mappers

from . import metrics, worker_metrics
from .extensions import QUEUE_NAMES, db, get_queue, get_redis

log = logging.getLogger(__name__)

WORKER_LOOPS_KEY = "llmgate.worker_loops"
WorkerLoop = Callable[[Flask, threading.Event], None]
LOOP_STOP_TIMEOUT_S = 15.0
_BACKOFF_MAX_S = 60.0


def register_worker_loop(app: Flask, loop: WorkerLoop) -> None:
    app.extensions.setdefault(WORKER_LOOPS_KEY, []).append(loop)


def _drop_inherited_connections(app: Flask) -> None:
    with app.app_context():
        for engine in db.engines.values():
            # close=False: the parent still owns these sockets; the child only forgets them.
            engine.dispose(close=False)


class AppWorker(Worker):
    """An RQ worker whose jobs see ``current_app`` and ``db``, and are all measured."""

    def __init__(self, *args, app: Flask, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = app
        self._owner_pid = os.getpid()
        self._job_started = 0.0

    def execute_job(self, job, queue):
        self._job_started = time.perf_counter()
        super().execute_job(job, queue)

    def monitor_work_horse(self, job, queue, execution):
        # Measured here, in the worker, rather than in the horse: a horse that is killed (timeout,
        # out of memory, `rq` stop command) records nothing, and its job must still be counted.
        # And here rather than after execute_job: RQ marks the worker idle as execute_job ends, and
        # SIGTERM to an idle worker raises StopRequested from the signal handler, wherever the worker
        # is. Until this returns the worker is busy, so SIGTERM during this bookkeeping means "stop
        # after this job" (a StopRequested raised inside it was once swallowed by _job_outcome).
        try:
            super().monitor_work_horse(job, queue, execution)
        finally:
            # The horse is gone; its in-flight gauges must not stay in /metrics.
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                mark_process_dead(worker_metrics.horse_identity(self._owner_pid),
                                  os.environ["PROMETHEUS_MULTIPROC_DIR"])
            metrics.JOB_DURATION.labels(_job_name(job), _job_outcome(job)).observe(
                time.perf_counter() - self._job_started)

    def main_work_horse(self, job, queue):
        try:
            # One set of metric files for all the horses of this worker, not one per job.
            worker_metrics.use_process_identity(worker_metrics.horse_identity(self._owner_pid))
            _drop_inherited_connections(self.app)
        except BaseException:
            # Returning from here would run the worker's own loop in the horse.
            log.exception("work horse for job %s could not start", job.id)
            os._exit(1)
        super().main_work_horse(job, queue)

    def perform_job(self, job, queue, execution) -> bool:
        with self.app.app_context():
            try:
                return super().perform_job(job, queue, execution)
            finally:
                db.session.remove()


def _job_name(job) -> str:
    try:
        return job.func_name
    except StopRequested:  # never swallow RQ's stop signal (see AppWorker.monitor_work_horse)
        raise
    except Exception:  # a job whose data cannot be read still ran (and failed)
        return "<unknown>"


def _job_outcome(job) -> str:
    try:
        status = job.get_status(refresh=True)
    except InvalidJobOperation:
        return "success"  # deleted as it finished (result_ttl=0); a failed job stays in the failed registry
    except StopRequested:
        raise
    except Exception:
        log.warning("could not read the status of job %s; counted as a failure", job.id, exc_info=True)
        return "failure"
    return "success" if status == JobStatus.FINISHED else "failure"


class LoopRunner:
    """Runs every registered worker loop in its own daemon thread until :meth:`stop`."""

    def __init__(self, app: Flask):
        self.app = app
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for loop in self.app.extensions.get(WORKER_LOOPS_KEY, []):
            name = getattr(loop, "__qualname__", repr(loop))
            thread = threading.Thread(target=self._keep_running, args=(loop, name), name=f"loop:{name}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def _keep_running(self, loop: WorkerLoop, name: str) -> None:
        backoff = 1.0
        while not self.stop_event.is_set():
            with self.app.app_context():
                try:
                    loop(self.app, self.stop_event)
                except Exception:
                    log.exception("worker loop %s failed; restarting in %.0fs", name, backoff)
                else:
                    if self.stop_event.is_set():
                        return
                    log.warning("worker loop %s returned before it was stopped; restarting in %.0fs", name, backoff)
                finally:
                    db.session.remove()
            self.stop_event.wait(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_S)

    def stop(self, timeout: float = LOOP_STOP_TIMEOUT_S) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("worker loop thread %s did not stop within %.0fs", thread.name, timeout)


# Modules every job needs (or most: ingest and finalize read and write tables), imported once in the
# worker so each work horse inherits them at fork instead of importing them again: the openai SDK
# alone took ~1.4 s per horse, i.e. per 500-row chunk (docs/benchmarks.md, "Batches").
# Not pandas: only ingest and finalize use it, once per batch each (~0.5 s), and in the parent it
# cost ~90 MB in every process of the worker tree (docs/benchmarks.md, "Batches", memory).
PRELOAD_MODULES = ("llmgate.batches.jobs", "llmgate.accounting.drain", "openai", "anthropic")


def preload(app: Flask) -> list[str]:
    """Import what jobs need before RQ forks work horses; the names that could not be imported.

    The provider modules of every provider kind in models.yaml (through
    ``providers.registry.provider_class``, so a kind added later is covered too) and
    :data:`PRELOAD_MODULES`; then the ORM's mappers are configured. Nothing is built or
    connected: the horse builds its own providers (~50 ms) and opens its own connections. A
    failure is logged and skipped; the job that needs the module will import it (and fail) itself.
    """
    import importlib

    from .gateway.catalog import get_catalog
    from .providers.registry import PROVIDERS, provider_class

    started = time.perf_counter()
    failed: list[str] = []
    with app.app_context():
        try:
            kinds = {d.provider for d in get_catalog(app).deployments()}
        except Exception:
            log.warning("could not read the models catalog to preload providers", exc_info=True)
            kinds = set()
    for kind in sorted(kinds & set(PROVIDERS)):
        try:
            provider_class(kind)
        except Exception:
            log.warning("could not preload provider %s", kind, exc_info=True)
            failed.append(kind)
    for name in PRELOAD_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # an optional dependency missing from this install
            log.info("not preloading %s", name, exc_info=True)
            failed.append(name)
    # The ORM's first query configures the mappers under a global mutex. Done here, in the only
    # thread there is yet: a horse forked while a worker loop thread held that mutex would wait
    # for it for ever (seen in CI: a batch's ingest horse hung in Session.get).
    configure_mappers()
    # What is loaded now lives as long as the worker: out of the collector's sight, a work horse's
    # collections no longer touch (and so copy) the pages it shares with its parent.
    gc.freeze()
    log.debug("preloaded job modules in %.2fs", time.perf_counter() - started,
              extra={"providers": sorted(kinds), "failed": failed})
    return failed


def queues_for(app: Flask, names: Sequence[str]) -> list[Queue]:
    return [get_queue(name, app) if name in QUEUE_NAMES else Queue(name, connection=get_redis(app))
            for name in names]


def run(app: Flask, *, queues: Sequence[str] = QUEUE_NAMES, burst: bool = False, with_scheduler: bool = True,
        max_jobs: int | None = None) -> bool:
    """One worker process: the loops in threads, RQ's work loop (and its signal handling) in front.

    Returns whether any job was processed. SIGTERM/SIGINT finish the current job, then stop.
    """
    from .metrics import PROCESS_START

    PROCESS_START.labels("worker").set(time.time())
    preload(app)  # before any fork (the RQ scheduler's too) and before the loop threads start
    worker = AppWorker(queues_for(app, queues), connection=get_redis(app), app=app)
    loops = LoopRunner(app)
    loops.start()
    try:
        # logging_level=None: RQ's loggers keep propagating to our handlers at our level.
        return worker.work(burst=burst, with_scheduler=with_scheduler, logging_level=None, max_jobs=max_jobs)
    finally:
        loops.stop()


class SupervisorError(RuntimeError):
    """``llmgate worker`` could not start (its metrics address, its metrics folder)."""


def supervise(count: int, child_args: Sequence[str], *, burst: bool = False, metrics_root: Path | None = None,
              metrics_bind: tuple[str, int] | None = None, metrics_token: str | None = None) -> int:
    """Run ``count`` worker processes; forward SIGTERM/SIGINT; replace a crashed one (except in burst).

    With ``metrics_root``, the workers run in prometheus_client's multiprocess mode in a fresh folder
    under it (``llmgate.worker_metrics.WorkerMetricsFolder``); ``metrics_bind`` (host, port) also
    serves that folder on ``/metrics``, behind ``metrics_token`` when one is given. Returns the first
    non-zero exit status of a worker, else 0.
    """
    command = [sys.executable, "-c", "from llmgate.cli import main; main()", *child_args]
    stopping = threading.Event()
    children: dict[int, subprocess.Popen] = {}
    env = dict(os.environ)

    def spawn(slot: int) -> None:
        children[slot] = subprocess.Popen(command, env={**env, "LLMGATE_WORKER_SLOT": str(slot)})

    def forward(signum, _frame) -> None:
        stopping.set()
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    folder: worker_metrics.WorkerMetricsFolder | None = None
    server = None
    try:
        if metrics_root is not None:
            try:
                folder = worker_metrics.WorkerMetricsFolder.create(metrics_root)
            except OSError as exc:
                raise SupervisorError(f"cannot use {metrics_root} for worker metrics: {exc}") from exc
            # The workers start with it, so prometheus_client is in multiprocess mode before any metric exists.
            env["PROMETHEUS_MULTIPROC_DIR"] = str(folder.path)
            if metrics_bind is not None:
                try:
                    server = worker_metrics.serve_worker_metrics(*metrics_bind, folder.path, metrics_token)
                except OSError as exc:
                    raise SupervisorError(f"cannot serve worker metrics on {metrics_bind[0]}:{metrics_bind[1]}: "
                                          f"{exc.strerror or exc}") from exc
        for slot in range(count):
            if not stopping.is_set():
                spawn(slot)
        log.info("started %d workers", len(children), extra={
            "pids": [c.pid for c in children.values()], "metrics_dir": str(folder.path) if folder else None})
        status = 0
        restarts: dict[int, float] = {}
        while children:
            for slot, child in list(children.items()):
                code = child.poll()
                if code is None:
                    continue
                del children[slot]
                if folder is not None:
                    folder.mark_dead(child.pid)
                if code != 0:
                    status = status or code
                if not (stopping.is_set() or burst):
                    log.error("worker %s exited with %s; starting another", child.pid, code)
                    # A worker that keeps crashing at start-up must not spin.
                    if time.monotonic() - restarts.get(slot, 0.0) < 5:
                        stopping.wait(5)
                    restarts[slot] = time.monotonic()
                    if not stopping.is_set():
                        spawn(slot)
            time.sleep(0.2)
        return status
    finally:
        for child in children.values():  # only when the supervisor itself failed
            if child.poll() is None:
                child.terminate()
        for child in children.values():
            try:
                child.wait(LOOP_STOP_TIMEOUT_S + 5)
            except subprocess.TimeoutExpired:
                child.kill()
        if server is not None:
            server.shutdown()
            server.server_close()
        if folder is not None:
            folder.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
