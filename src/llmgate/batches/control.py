"""What batch workers share through Redis: leases on tasks, stop flags, progress ticks.

A task (``ingest``, ``chunk:<n>``, ``finalize``) is worked on only while its lease is held; the
lease has a TTL that the working job keeps refreshing, so a worker killed with ``kill -9``
lets go within ``BATCH_LEASE_TTL_S`` and the supervisor hands the task to another worker.
Leases save duplicate work; correctness does not rest on them (rows are written with a
conditional update). A stop flag (``cancel`` / ``pause``) is read between rows.
"""
from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app

from ..extensions import get_redis

PREFIX = "llmgate:batch:"
TICKS_KEPT = 400

_REFRESH = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def setting(name: str, default):
    return type(default)(current_app.config.get(name, default))


def lease_ttl() -> float:
    return setting("BATCH_LEASE_TTL_S", 10.0)


def _lease_key(batch_id: str, task: str) -> str:
    return f"{PREFIX}{batch_id}:lease:{task}"


class Lease:
    def __init__(self, redis, key: str, token: str, ttl_ms: int):
        self.redis, self.key, self.token, self.ttl_ms = redis, key, token, ttl_ms
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._keep, daemon=True, name=f"lease {key}")

    def _keep(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                if not self.redis.eval(_REFRESH, 1, self.key, self.token, self.ttl_ms):
                    self.lost.set()  # another worker took over: stop soon, it will redo what we did not finish
                    return
            except Exception:  # Redis blinked: try again next beat; the TTL leaves room for two misses
                continue

    def release(self) -> None:
        self._stop.set()
        try:
            self.redis.eval(_RELEASE, 1, self.key, self.token)
        except Exception:
            pass  # it expires on its own


def acquire(batch_id: str, task: str) -> Lease | None:
    """Take the lease on ``task`` and keep it alive until :meth:`Lease.release`; ``None`` when held."""
    redis = get_redis()
    ttl_ms = int(lease_ttl() * 1000)
    key, token = _lease_key(batch_id, task), secrets.token_hex(8)
    if not redis.set(key, token, nx=True, px=ttl_ms):
        return None
    lease = Lease(redis, key, token, ttl_ms)
    lease._thread.start()
    return lease


@contextmanager
def hold(batch_id: str, task: str) -> Iterator[Lease | None]:
    """The lease on ``task``, kept alive while the block runs; ``None`` when someone else holds it."""
    lease = acquire(batch_id, task)
    if lease is None:
        yield None
        return
    try:
        yield lease
    finally:
        lease.release()


def is_held(batch_id: str, task: str) -> bool:
    return bool(get_redis().exists(_lease_key(batch_id, task)))


def held_tasks(batch_id: str) -> list[str]:
    prefix = _lease_key(batch_id, "")
    return [k.decode()[len(prefix):] for k in get_redis().scan_iter(match=prefix + "*", count=500)]


# --- stop flags -----------------------------------------------------------------------------------

def _flag_key(batch_id: str) -> str:
    return f"{PREFIX}{batch_id}:stop"


def request_stop(batch_id: str, why: str) -> None:
    get_redis().set(_flag_key(batch_id), why)


def clear_stop(batch_id: str) -> None:
    get_redis().delete(_flag_key(batch_id))


class StopFlag:
    """Reads the stop flag at most every ``interval`` seconds (rows run in the hundreds per second)."""

    def __init__(self, batch_id: str, interval: float = 0.25):
        self.batch_id, self.interval = batch_id, interval
        self._checked, self._value = 0.0, None
        self.redis = get_redis()
        self.local: str | None = None  # set by this job (a budget pause) without a round trip

    def value(self) -> str | None:
        if self.local:
            return self.local
        now = time.monotonic()
        if now - self._checked >= self.interval:
            raw = self.redis.get(_flag_key(self.batch_id))
            self._value = raw.decode() if raw else None
            self._checked = now
        return self._value


# --- progress ---------------------------------------------------------------------------------------

def _ticks_key(batch_id: str) -> str:
    return f"{PREFIX}{batch_id}:ticks"


def record_tick(batch_id: str, rows: int) -> None:
    key = _ticks_key(batch_id)
    pipe = get_redis().pipeline(transaction=False)
    pipe.lpush(key, f"{time.time():.3f}:{rows}")
    pipe.ltrim(key, 0, TICKS_KEPT - 1)
    pipe.expire(key, 7 * 86400)
    pipe.execute()


def rows_per_second(batch_id: str, window_s: float = 30.0) -> float:
    now = time.time()
    ticks = [t.decode().split(":") for t in get_redis().lrange(_ticks_key(batch_id), 0, TICKS_KEPT - 1)]
    recent = [(float(ts), int(n)) for ts, n in ticks if now - float(ts) <= window_s]
    if not recent:
        return 0.0
    oldest = min(ts for ts, _ in recent)
    span = max(now - oldest, 1.0)
    return sum(n for _, n in recent) / span


# --- job bookkeeping ------------------------------------------------------------------------------------

def jobs_key(batch_id: str) -> str:
    return f"{PREFIX}{batch_id}:jobs"


def remember_job(batch_id: str, task: str, job_id: str) -> None:
    redis = get_redis()
    redis.hset(jobs_key(batch_id), task, job_id)
    redis.expire(jobs_key(batch_id), 30 * 86400)


def job_for(batch_id: str, task: str) -> str | None:
    raw = get_redis().hget(jobs_key(batch_id), task)
    return raw.decode() if raw else None


def forget(batch_id: str) -> None:
    get_redis().delete(jobs_key(batch_id), _flag_key(batch_id))
