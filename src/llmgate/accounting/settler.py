"""Settles sent after the answer, several per Redis round trip.

A ``/v1`` answer is already on its way when its attempt settles, so nothing waits for that
round trip except the worker's CPU: each one costs a pooled-connection check, a send, a wake-up
and a parse (~0.15-0.2 ms under gevent, measured in docs/benchmarks.md). The views therefore
hand their settles to this process's ``Settler``:

- the next ``admit`` in the process takes every pending settle and sends them in the same
  pipeline, ahead of itself, so a caller's own next request always sees its previous one
  released (same order as before, one round trip instead of two);
- a background flusher (a greenlet under gevent, a daemon thread otherwise) sends whatever no
  admit took within ``GATHER_S`` (2 ms), so a settle never waits for traffic.

A settle is lost only if the process dies before sending it, which is the window an in-flight
request has anyway (its concurrency slot then expires with its lease). Pending settles are sent
at exit. Nothing here raises into a request: a settle that cannot be sent is counted in
``llmgate_usage_events_lost_total`` and logged, as ``gate.settle`` always did.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask

from .. import metrics
from .process_thread import ProcessThread

log = logging.getLogger(__name__)

SETTLER_KEY = "llmgate.accounting.settler"
# How long the flusher waits, once woken, before sending: at one request at a time the next
# admit usually arrives within it and carries the settle (one round trip a request instead of
# two: -9 % CPU a request at c=1, -3 to -4 % at c=16, measured with bench/gateway_bench.py).
# A settle no admit takes reaches Redis this much later; a slot is held that much longer.
GATHER_S = 0.002
_UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


@dataclass(slots=True)
class Pending:
    """One settle's script arguments, and what to do with its reply (``None``: it was lost)."""

    keys: Sequence[Any]
    args: Sequence[Any]
    done: Callable[[Any], None]
    event: dict[str, Any]


def run_scripts(client: redis.Redis, scripts: Sequence[Any], calls: Sequence[tuple[Any, Sequence, Sequence]]
                ) -> tuple[list[Any], bool]:
    """Run ``(script, keys, args)`` calls in one pipeline (no MULTI), in order: each reply or the
    ``ResponseError`` it raised, and whether some had to run again. Scripts Redis does not know
    (first use, restart, SCRIPT FLUSH) are loaded and the calls that answered NOSCRIPT run again,
    in order, once; a NOSCRIPT call did nothing, but the calls after it in the first pipeline
    did, so they ran before it (the caller decides whether that matters). Connection errors
    propagate.

    redis-py's own ``Script`` in a pipeline asks ``SCRIPT EXISTS`` before every execute, an extra
    round trip each time; EVALSHA with a fallback costs none.
    """
    pipe = client.pipeline(transaction=False)
    for script, keys, args in calls:
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    replies = pipe.execute(raise_on_error=False)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, redis.exceptions.NoScriptError)]
    if not missing:
        return replies, False
    for script in scripts:
        client.script_load(script.script)
    pipe = client.pipeline(transaction=False)
    for i in missing:
        script, keys, args = calls[i]
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    for i, reply in zip(missing, pipe.execute(raise_on_error=False)):
        replies[i] = reply
    return replies, True


def deliver(pending: Sequence[Pending], replies: Sequence[Any] | None) -> None:
    """Hand each settle its reply; count and log those that failed (``replies`` None: all lost)."""
    for i, item in enumerate(pending):
        reply = None if replies is None else replies[i]
        if reply is None or isinstance(reply, Exception):
            metrics.USAGE_EVENTS_LOST.inc()
            log.error("usage event not recorded: %s", "Redis unreachable" if reply is None else reply,
                      extra={"usage_event": item.event})
            continue
        try:
            item.done(reply)
        except Exception:  # the gauges and alerts of one settle must not stop the others
            log.exception("settle follow-up failed", extra={"usage_event": item.event})


class Settler:
    """This process's pending settles and their background flusher."""

    def __init__(self, app: Flask, scripts: Callable[[], Sequence[Any]], client: Callable[[], redis.Redis]) -> None:
        self._app = app
        self._scripts = scripts
        self._client = client
        self._flusher = ProcessThread("llmgate-settler", self._run)
        self._forget()
        atexit.register(self.send_now)
        # A forked child (an RQ work horse) starts empty: the parent sends what it had queued.
        os.register_at_fork(after_in_child=self._forget)

    # --- used by gate -------------------------------------------------------------------------

    def submit(self, item: Pending) -> None:
        self._flusher.ensure_started()
        self._queue.append(item)
        self._wake.set()

    def take(self) -> list[Pending]:
        """Every pending settle, for the caller to send (``admit`` carries them)."""
        taken = []
        queue = self._queue
        while True:
            try:
                taken.append(queue.popleft())
            except IndexError:
                return taken

    def send(self, pending: Sequence[Pending]) -> None:
        if not pending:
            return
        settle_script = self._scripts()[1]
        try:
            replies, _ = run_scripts(self._client(), self._scripts(),
                                     [(settle_script, item.keys, item.args) for item in pending])
        except Exception as error:  # never lost silently: deliver() counts and logs each one
            if not isinstance(error, _UNAVAILABLE):
                log.exception("settles not sent")
            replies = None
        deliver(pending, replies)

    def send_now(self) -> None:
        """Send everything pending from the calling thread (exit, tests)."""
        pending = self.take()
        if pending:
            with self._app.app_context():
                self.send(pending)

    def idle(self) -> bool:
        return not self._queue and not self._sending

    def wait_sent(self, timeout_s: float = 5.0) -> bool:
        """Send what is queued now and wait for the flusher's batch in flight, if any: afterwards
        every settle submitted before the call has reached Redis (or been counted lost)."""
        self.send_now()
        deadline = time.monotonic() + timeout_s
        while self._sending:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True

    # --- the flusher --------------------------------------------------------------------------

    def _forget(self) -> None:
        self._queue: deque[Pending] = deque()
        self._wake = threading.Event()
        self._sending = 0
        self._flusher.forget()

    def _run(self) -> None:
        wake, app = self._wake, self._app
        while True:
            wake.wait()
            time.sleep(GATHER_S)  # let the next admit carry them, or more of them gather
            wake.clear()
            self._sending += 1  # before take(): idle() must never see taken settles as sent
            pending = self.take()
            try:
                with app.app_context():
                    self.send(pending)
            except Exception:  # keep flushing whatever happens to one batch
                log.exception("settles not sent")
            finally:
                self._sending -= 1
