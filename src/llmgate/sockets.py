"""Zero-timeout socket probes that stay out of gevent's hub.

Connection pools (httpcore2's for upstreams, redis-py's for Redis) ask every pooled connection
"is anything readable?" before reusing it: an idle connection with data waiting is stale or
hung up. Under gevent's monkey-patching ``select.poll`` is gevent's, which creates and starts a
libev watcher per call and may switch to the hub: tens of µs per probe, several probes per
request (docs/benchmarks.md, "Gateway"). A zero-timeout poll never blocks, so the operating
system's own ``poll`` (``gevent.monkey.get_original``) answers the same question with one
system call.
"""
from __future__ import annotations

import select
import socket
import sys
from typing import Any


def os_poll() -> Any:
    """``select.poll`` as the operating system provides it, even when gevent has patched ``select``."""
    if "gevent.monkey" in sys.modules:  # nothing can have patched select without importing this
        from gevent import monkey

        return monkey.get_original("select", "poll")
    return select.poll


def socket_readable(sock: socket.socket | None, poll: Any = None) -> bool:
    """Readable now (data, or the peer hung up), with a poll that never enters gevent's hub."""
    fd = None if sock is None else sock.fileno()
    if fd is None or fd < 0:
        return True  # gone: as if the next read would return the closing b""
    poller = (poll or os_poll())()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
