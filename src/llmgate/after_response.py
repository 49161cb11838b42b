"""Bookkeeping that can wait until the answers ready to go out have gone: ``defer(fn, *args)``.

Once an answer is written, its close hooks still do ~0.1 ms of work: the access log line, and the
attempt's close (health, metrics, the usage event handed to the settler). Under gunicorn's gevent
worker, answers come back from upstreams in bursts — with a fixed upstream latency, the requests
of a closed-loop client return almost together — and every answer in a burst waited for the
close hooks of those before it. ``defer`` queues such work for one helper greenlet, which gevent
starts on its next loop turn, after every greenlet whose socket is ready has run: each answer in
the burst goes out first, the bookkeeping follows. At 50 ms × 16 connections that took the added
p50 from +1.66–1.76 to +1.40–1.51 ms (docs/benchmarks.md, "Fifth pass"). No work is dropped:
what is queued runs in order, each job's failure is logged without stopping the others, and
what is still queued when the process exits runs then.

Outside gevent (tests, the development server, RQ workers, the CLI), ``defer`` runs the work at
once, in the caller.
"""
from __future__ import annotations

import atexit
import logging
import os
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_UNKNOWN = object()


class Deferrer:
    """One per process (``defer`` below); see the module's docstring."""

    def __init__(self) -> None:
        self._jobs: deque[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = deque()
        self._draining = False
        self._spawn: Any = _UNKNOWN

    def defer(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        spawn = self._spawn
        if spawn is _UNKNOWN:
            spawn = self._spawn = _gevent_spawn()
        if spawn is None:
            fn(*args, **kwargs)
            return
        self._jobs.append((fn, args, kwargs))
        if not self._draining:
            self._draining = True
            spawn(self.drain)

    def drain(self) -> None:
        """Run what is queued, oldest first (also what is queued meanwhile)."""
        try:
            while self._jobs:
                fn, args, kwargs = self._jobs.popleft()
                try:
                    fn(*args, **kwargs)
                except Exception:  # noqa: BLE001 — one failed job must not cost the others theirs
                    log.exception("deferred bookkeeping failed: %s", getattr(fn, "__qualname__", fn))
        finally:
            self._draining = False

    def _forget_after_fork(self) -> None:
        # A child must not run its parent's queued work a second time.
        self._jobs = deque()
        self._draining = False
        self._spawn = _UNKNOWN


def _gevent_spawn() -> Callable[[Callable[[], None]], Any] | None:
    """``gevent.spawn_raw`` when this process runs on gevent's monkey-patched sockets."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("socket"):
        return None
    import gevent

    return gevent.spawn_raw


_deferrer = Deferrer()
defer = _deferrer.defer
os.register_at_fork(after_in_child=_deferrer._forget_after_fork)  # pylint: disable=protected-access
atexit.register(_deferrer.drain)
