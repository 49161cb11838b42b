"""Helpers for tests that run ``llmgate`` as a real process against the session's database and Redis."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

LLMGATE = [sys.executable, "-c", "from llmgate.cli import main; main()"]
REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def process_env(migrated: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    """Environment for an ``llmgate`` subprocess on the session's database and Redis, in its own instance folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMGATE_", "PROMETHEUS_"))}
    env.update({
        "LLMGATE_ENV": "development",
        "LLMGATE_INSTANCE_PATH": str(tmp_path / "instance"),
        "LLMGATE_DATABASE_URL": migrated["SQLALCHEMY_DATABASE_URI"],
        "LLMGATE_REDIS_URL": migrated["REDIS_URL"],
        "LLMGATE_SECRET_KEY": migrated["SECRET_KEY"],
        "LLMGATE_JWT_SECRET_KEY": migrated["JWT_SECRET_KEY"],
        "LLMGATE_MODELS_FILE": migrated["MODELS_FILE"],
        "LLMGATE_LOG_LEVEL": "INFO",
        # Jobs defined in test modules must be importable by the subprocess.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    })
    return env


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def stop(process: subprocess.Popen, timeout: float = 20.0) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
