"""``llmgate worker``: jobs run in the app context with the database; worker loops start and stop."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa
from flask import current_app
from flask.cli import ScriptInfo
from rq import Worker
from rq.job import Job

from llmgate.cli import cli
from llmgate.extensions import db, get_queue, get_redis
from llmgate.worker import WORKER_LOOPS_KEY, register_worker_loop

from .conftest import LLMGATE, stop


def job_using_app_and_db(tag: str) -> dict:
    """An RQ job as features write them: current_app and db, no arguments but ids."""
    value = db.session.execute(sa.text("SELECT 40 + 2")).scalar_one()
    get_redis().set(f"test:job:{tag}", os.getpid())
    return {"env": current_app.config["LLMGATE_ENV"], "db": value, "pid": os.getpid()}


def failing_job() -> None:
    raise ValueError("this job fails")


def invoke(app, args):
    """``llmgate worker`` in this process, as one of a supervisor's workers (a plain invocation would
    start worker processes that build their own app)."""
    return app.test_cli_runner().invoke(cli, args, obj=ScriptInfo(create_app=lambda: app),
                                        env={"LLMGATE_WORKER_SLOT": "0"})


def test_burst_worker_runs_jobs_in_the_app_context_with_the_database(app):
    with app.app_context():
        job = get_queue("default").enqueue(job_using_app_and_db, "a")
        failed = get_queue("batches").enqueue(failing_job)
    result = invoke(app, ["worker", "--burst", "--queues", "default,batches"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        job.refresh()
        failed.refresh()
        assert job.get_status() == "finished", job.latest_result()
        value = job.return_value()
        assert value["db"] == 42 and value["env"] == "testing"
        assert value["pid"] != os.getpid()  # ran in a forked work horse
        assert failed.get_status() == "failed"
        # The worker process still has a working database connection after the horses.
        assert db.session.execute(sa.text("SELECT 1")).scalar_one() == 1


def test_worker_loops_start_in_the_app_context_and_stop(app):
    events: list[str] = []
    seen_app = []

    def loop(loop_app, stop_event: threading.Event) -> None:
        seen_app.append(current_app._get_current_object() is loop_app)
        events.append("started")
        stop_event.wait()
        events.append("stopped")

    register_worker_loop(app, loop)
    assert loop in app.extensions[WORKER_LOOPS_KEY]
    result = invoke(app, ["worker", "--burst"])
    assert result.exit_code == 0, result.output
    assert events == ["started", "stopped"] and seen_app == [True]


def test_a_failing_loop_is_restarted(app):
    calls = []

    def flaky(loop_app, stop_event):
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("first run fails")
        stop_event.wait()

    from llmgate.worker import LoopRunner

    register_worker_loop(app, flaky)
    runner = LoopRunner(app)
    runner.start()
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    runner.stop()
    assert len(calls) == 2 and not any(t.is_alive() for t in runner.threads)


@pytest.mark.once
def test_worker_processes_stop_on_sigterm(process_env, app):
    worker = subprocess.Popen([*LLMGATE, "worker", "--count", "2"], env=process_env)
    try:
        with app.app_context():
            deadline = time.monotonic() + 30
            while len(Worker.all(connection=get_redis())) < 2 and time.monotonic() < deadline:
                assert worker.poll() is None
                time.sleep(0.2)
            assert len(Worker.all(connection=get_redis())) == 2
            job = get_queue("default").enqueue(job_using_app_and_db, "sub")
            deadline = time.monotonic() + 20
            while job.get_status(refresh=True) != "finished" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert job.return_value()["db"] == 42
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0 and time.monotonic() - started < 15
        with app.app_context():
            assert Worker.all(connection=get_redis()) == []
    finally:
        stop(worker)


class SignalsOnStatusRead(Job):
    """Sends its worker SIGTERM the moment the worker reads the finished job's status, i.e. while
    the worker does its own bookkeeping after the horse exits (``AppWorker``: the job's outcome)."""

    def get_status(self, refresh: bool = True):
        status = super().get_status(refresh)
        if status == "finished" and os.getpid() == int(os.environ["TEST_WORKER_PID"]):
            print("SIGTERM sent", flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
        return status


RUN_ONE_JOB_THEN_STOP = """
import os, sys
os.environ["TEST_WORKER_PID"] = str(os.getpid())
from llmgate import create_app
from llmgate.extensions import get_queue, get_redis
from llmgate.worker import AppWorker
from tests.cli.test_worker import SignalsOnStatusRead, job_using_app_and_db

app = create_app()
with app.app_context():
    queue = get_queue("default")
    job = queue.enqueue(job_using_app_and_db, "signalled")
    worker = AppWorker([queue], connection=get_redis(), app=app, job_class=SignalsOnStatusRead)
    worker.work(with_scheduler=True, logging_level=None)  # not burst: only the signal ends it
    print("stopped with job", job.get_status(refresh=True).value, flush=True)
    from llmgate.metrics import JOB_DURATION
    counts = {s.labels["outcome"]: s.value for m in JOB_DURATION.collect() for s in m.samples
              if s.name.endswith("_count")}
    print("measured as", counts, flush=True)
"""


@pytest.mark.once
def test_a_sigterm_while_the_worker_wraps_up_a_job_still_stops_it(process_env):
    """RQ marks its worker idle before AppWorker's own bookkeeping of the job, and on an idle
    worker SIGTERM raises StopRequested (an Exception) from the signal handler: a broad except in
    that bookkeeping swallowed it, and the worker went back to waiting for jobs (seen in CI)."""
    worker = subprocess.Popen([sys.executable, "-c", RUN_ONE_JOB_THEN_STOP], env=process_env,
                              stdout=subprocess.PIPE, text=True)
    try:
        output, _ = worker.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        stop(worker)
        output = worker.communicate()[0]
        pytest.fail(f"the worker did not stop on the SIGTERM it got while wrapping up the job:\n{output[-3000:]}")
    assert "SIGTERM sent" in output and "stopped with job finished" in output, output
    assert "measured as {'success': 1.0}" in output, output  # and the job still counted, as a success
    assert worker.returncode == 0


FORK_WHILE_CONFIGURING = """
import importlib, os, sys, threading, time
from llmgate import create_app
from llmgate.extensions import db
from llmgate.models.user import User
from llmgate.worker import preload

app = create_app()
if sys.argv[1] == "preload":
    preload(app)
# A worker loop thread is inside SQLAlchemy's mapper configuration (its first ORM query) at the
# moment RQ forks a work horse: the horse inherits the mutex held by a thread it does not have.
held, release = threading.Event(), threading.Event()
def configuring():
    with importlib.import_module("sqlalchemy.orm.mapper")._CONFIGURE_MUTEX:
        held.set()
        release.wait()
threading.Thread(target=configuring, daemon=True).start()
assert held.wait(10)
pid = os.fork()
if pid == 0:  # the horse: its own connections, then the ORM query every job makes
    with app.app_context():
        db.engine.dispose(close=False)
        db.session.get(User, 1)
    os._exit(0)
release.set()
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    if os.waitpid(pid, os.WNOHANG)[0]:
        print("horse finished", flush=True)
        sys.exit(0)
    time.sleep(0.05)
os.kill(pid, 9)
os.waitpid(pid, 0)
print("horse deadlocked", flush=True)
"""


def test_a_horse_forked_while_a_loop_thread_configures_the_orm_does_not_hang(process_env):
    """CI saw a batch's ingest horse hang for good in SQLAlchemy's mapper configuration: a worker
    loop thread held the configuration mutex when RQ forked it. ``preload`` now configures the
    mappers before any loop thread starts or any fork, so no horse ever needs that mutex."""
    def run(mode, wait_s):
        return subprocess.run([sys.executable, "-c", FORK_WHILE_CONFIGURING, mode, str(wait_s)], env=process_env,
                              capture_output=True, text=True, timeout=60).stdout

    assert "horse deadlocked" in run("no-preload", 3)  # the hazard is real: this is how it hung
    assert "horse finished" in run("preload", 20)
