"""The Redis client llmgate uses: redis-py with a pooled-connection check that skips gevent's hub,
and a leaner command packer.

Before every command redis-py's pool asks the connection it hands out ``can_read()`` (unread
data means the connection is dirty and must be replaced). With hiredis that is a zero-timeout
``select.poll`` on the socket, gevent's under monkey-patching: ~45 µs a command, ~0.1 ms a
proxied request (admit + settle), measured in docs/benchmarks.md. The connections here answer
"nothing buffered and nothing readable" with the operating system's poll
(:mod:`llmgate.sockets`) and leave every other case — buffered data, a readable or closed
socket, a timeout, the pure-Python parser — to redis-py's own ``can_read``.

With hiredis, redis-py's packer rebuilds every command's argument tuple in a generator (to turn
``bytearray`` arguments into ``bytes``) before ``hiredis.pack_command``: 13 µs for admit's ~37
arguments against 4 µs for hiredis itself. :class:`LeanPacker` hands the tuple to hiredis as it
is and leaves anything hiredis refuses to redis-py's packer, so the bytes and errors are the same.
"""
from __future__ import annotations

from typing import Any

import redis
from redis.connection import Connection, HiredisRespSerializer, SSLConnection, UnixDomainSocketConnection

from .sockets import os_poll, socket_readable

try:
    import hiredis
except ImportError:  # redis-py then packs in Python and parses with its own parser
    hiredis = None


class LeanPacker(HiredisRespSerializer):
    """redis-py's hiredis packer without its per-argument copy (see the module's docstring)."""

    def pack(self, *args: Any) -> list[bytes]:
        first = args[0]
        if " " in first if isinstance(first, str) else b" " in first:  # "SCRIPT LOAD" and the like
            return super().pack(*args)
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # bytearray arguments, or a type nothing packs: redis-py's way
            return super().pack(*args)


class _QuickIdleCheck:
    _poll: Any = None  # the OS poll, looked up on first use (after gevent has patched, if it does)

    def _construct_command_packer(self, packer: Any) -> Any:
        if packer is None and hiredis is not None:
            return LeanPacker()
        return super()._construct_command_packer(packer)  # type: ignore[misc]

    def can_read(self, timeout: float = 0) -> bool:
        sock = self._sock  # type: ignore[attr-defined]
        if timeout == 0 and sock is not None:
            reader = getattr(self._parser, "_reader", None)  # type: ignore[attr-defined]  # hiredis
            if reader is not None and not reader.has_data():
                if _QuickIdleCheck._poll is None:
                    _QuickIdleCheck._poll = os_poll()
                if not socket_readable(sock, _QuickIdleCheck._poll):
                    return False
        return super().can_read(timeout)  # type: ignore[misc]


class TCPConnection(_QuickIdleCheck, Connection):
    pass


class UnixConnection(_QuickIdleCheck, UnixDomainSocketConnection):
    pass


_CLASSES = {Connection: TCPConnection, UnixDomainSocketConnection: UnixConnection}


def from_url(url: str, **kwargs: Any) -> redis.Redis:
    """``redis.Redis.from_url`` with the connection classes above (TLS keeps redis-py's: its
    decrypted bytes can sit above the socket, where a poll cannot see them)."""
    pool = redis.ConnectionPool.from_url(url, **kwargs)
    if pool.connection_class is not SSLConnection:
        pool.connection_class = _CLASSES.get(pool.connection_class, pool.connection_class)
    client = redis.Redis(connection_pool=pool)
    client.auto_close_connection_pool = True
    return client
