"""One daemon thread per process for a background loop (the settler's flusher, the slot renewer).

Started on first use, and again on first use in a forked child such as an RQ work horse, where
the parent's thread does not exist. Under gevent's monkey-patching the thread is a greenlet.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any


class ProcessThread:
    def __init__(self, name: str, target: Callable[..., None], *args: Any) -> None:
        self._name, self._target, self._args = name, target, args
        self.forget()

    def ensure_started(self) -> None:
        """Start the thread unless this process already has it (a pid compare when it has)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._target, args=self._args, name=self._name, daemon=True).start()

    def forget(self) -> None:
        """For a forked child: no thread runs here yet, and another thread may have held the lock."""
        self._lock = threading.Lock()
        self._pid = 0
