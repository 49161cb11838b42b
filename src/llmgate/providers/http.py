"""The ``httpx2.Client`` under every provider's SDK client: httpcore2's pool, cheaper per request.

It carries the SDKs' own path: calls of deployments without a static key, and everything behind an
environment proxy. Calls with a static key (the common case) go over ``providers/origin.py``
instead (``sdk_call.Endpoint``), cheaper still.

Two costs of the stock client show up in the gateway's profile (docs/benchmarks.md, "Gateway"),
both in httpcore2's sync network stream, and both are fixed here through httpcore2's public
``network_backend`` option rather than by patching the library:

- **The idle-connection probe.** Every time the pool assigns or releases a request it asks each
  idle keep-alive connection ``has_expired()``, which probes the socket with ``select.poll()``
  (a readable idle socket means the server hung up). Under gevent's monkey-patching that
  ``poll`` is gevent's, which creates and starts a libev watcher per call and may switch to
  the hub: with 16 pooled connections that is ~30 probes a request, 0.35-0.45 ms of CPU. A
  zero-timeout poll never blocks, so the operating system's own ``poll`` (``gevent.monkey.
  get_original``) answers the same question at the cost of one system call, without the hub.
- **Two writes per request.** httpcore2 writes the request head and the body separately: two
  system calls and two wake-ups of the upstream. The stream here holds written bytes until the
  response is read (or 64 KiB are pending) and sends them in one write.

The transport is httpx2's own ``HTTPTransport`` (its exception mapping and response streams);
only its connection pool is rebuilt with the backend above. Behind an environment proxy
(``HTTP(S)_PROXY``/``ALL_PROXY``) the SDK keeps its own default client, unchanged.
"""
from __future__ import annotations

import itertools
import socket
import urllib.request
from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2

from llmgate.sockets import os_poll, socket_readable

# The SDKs' own defaults (openai and anthropic ``DEFAULT_CONNECTION_LIMITS``), kept.
DEFAULT_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
# Joined writes stop growing here: a larger body is sent as it comes.
MAX_PENDING_WRITE = 64 * 1024
# Connection pools per deployment and process (see PoolSet).
POOLS = 4

SocketOption = tuple[int, int, int | bool | bytes]


class JoinedWriteStream(httpcore2.NetworkStream):
    """A network stream whose writes are sent together just before the next read, and whose
    readability probe is :func:`socket_readable`."""

    __slots__ = ("_inner", "_sock", "_poll", "_pending", "_pending_size", "_write_timeout")

    def __init__(self, inner: httpcore2.NetworkStream, poll: Any) -> None:
        self._inner = inner
        self._sock = inner.get_extra_info("socket")
        self._poll = poll
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._write_timeout: float | None = None

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        self._pending.append(buffer)
        self._pending_size += len(buffer)
        self._write_timeout = timeout
        if self._pending_size >= MAX_PENDING_WRITE:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        self._pending_size = 0
        self._inner.write(data, self._write_timeout)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._pending:
            try:
                self.flush()
            except httpcore2.WriteError:
                # As httpcore2 does for a failed write: read on, a server that stopped reading the
                # request early may still have sent a well-formed error answer.
                pass
        return self._inner.read(max_bytes, timeout)

    def close(self) -> None:
        self._pending = []
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore2.NetworkStream:
        self.flush()
        return JoinedWriteStream(self._inner.start_tls(ssl_context, server_hostname, timeout), self._poll)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return socket_readable(self._sock, self._poll)
        return self._inner.get_extra_info(info)


class JoinedWriteBackend(httpcore2.NetworkBackend):
    """httpcore2's sync backend, handing out :class:`JoinedWriteStream` s."""

    def __init__(self) -> None:
        self._inner = httpcore2.SyncBackend()
        self._poll = os_poll()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[SocketOption] | None = None) -> httpcore2.NetworkStream:
        return JoinedWriteStream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options),
                                 self._poll)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[SocketOption] | None = None) -> httpcore2.NetworkStream:
        return JoinedWriteStream(self._inner.connect_unix_socket(path, timeout, socket_options), self._poll)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class PoolSet:
    """Several httpcore2 connection pools behind one, requests dealt out in turn.

    httpcore2's pool walks every connection it holds twice per request (assigning the request,
    then releasing it), probing each idle one: at 64 requests in flight that walk was 12 % of a
    gateway worker's CPU. ``POOLS`` pools holding a share of the limits each keep the same
    connections in all, and each walk sees a quarter of them: +3 to +7 % req/s at c=64 in five
    alternating runs (docs/benchmarks.md, "Gateway"). Any pool can serve any request.
    """

    def __init__(self, pools: list[httpcore2.ConnectionPool]) -> None:
        self.pools = pools
        self._turn = itertools.cycle(pools)

    def handle_request(self, request: httpcore2.Request) -> httpcore2.Response:
        return next(self._turn).handle_request(request)

    def close(self) -> None:
        for pool in self.pools:
            pool.close()

    def __enter__(self) -> PoolSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ProviderTransport(httpx2.HTTPTransport):
    """httpx2's transport over connection pools that use :class:`JoinedWriteBackend`."""

    def __init__(self, *, limits: httpx2.Limits = DEFAULT_LIMITS,
                 socket_options: Iterable[SocketOption] | None = None, pools: int = POOLS) -> None:
        # HTTPTransport.__init__ takes no network backend and does nothing but build ``_pool``, the
        # one attribute its methods use; building it here instead of replacing the one it built
        # saves loading the CA bundle twice (~20 ms a deployment). tests/providers/test_http.py
        # checks that requests do go through JoinedWriteStream.
        ssl_context = httpx2.create_ssl_context()
        backend = JoinedWriteBackend()
        share = lambda limit: None if limit is None else max(1, -(-limit // pools))  # noqa: E731 (ceil)
        self._pool = PoolSet([httpcore2.ConnectionPool(
            ssl_context=ssl_context, max_connections=share(limits.max_connections),
            max_keepalive_connections=share(limits.max_keepalive_connections),
            keepalive_expiry=limits.keepalive_expiry, socket_options=socket_options, network_backend=backend)
            for _ in range(pools)])


def tcp_keepalive_options() -> list[SocketOption]:
    """TCP keep-alive probes after 60 s idle, every 60 s, 5 tries: what the anthropic SDK's default client sets."""
    options: list[SocketOption] = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)]
    for name, value in (("TCP_KEEPINTVL", 60), ("TCP_KEEPCNT", 5), ("TCP_KEEPIDLE", 60)):
        option = getattr(socket, name, None)
        if option is not None:
            options.append((socket.IPPROTO_TCP, option, value))
    return options


def environment_proxy() -> bool:
    """Whether httpx2 would route requests through a proxy taken from the environment."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


def http_client(*, timeout: float, socket_options: Iterable[SocketOption] | None = None) -> httpx2.Client | None:
    """The client to hand an SDK as ``http_client``, with the SDK's defaults (limits, redirects,
    timeout); None behind an environment proxy, where the SDK's own default client is right."""
    if environment_proxy():
        return None
    return httpx2.Client(timeout=timeout, follow_redirects=True,
                         transport=ProviderTransport(limits=DEFAULT_LIMITS, socket_options=socket_options))
