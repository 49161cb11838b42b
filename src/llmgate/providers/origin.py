"""HTTP/1.1 exchanges with one upstream origin, over the standard library: the prepared path's wire.

``sdk_call.Endpoint`` builds a deployment's request head once (the SDK's URL and headers); what is
left per call is to send head + body on a keep-alive connection and read the answer. Through
``httpx2.Client.send`` that costs ~270 µs of CPU a call on this project's benchmark machine
(client, transport, httpcore2's pool and h11's state machine); through urllib3 ~160 µs; with a
stack of idle sockets and ``http.client`` parsing the answer, ~80 µs (``bench/hotpath_bench.py``,
docs/benchmarks.md "Fifth pass"). That difference is a tenth of what the gateway spends per request.

What an HTTP client must still get right here, and how:

- **Keep-alive.** Idle connections wait in a LIFO stack per origin (the warmest first). One idle
  longer than ``keepalive_expiry`` (httpx2's 5 s) is closed instead of reused, and so is one that
  is readable while idle: the server hung up (the probe is the OS's ``poll``, see ``sockets``).
  A server may still close a connection just as a request goes out on it; a reused connection
  that fails before a byte of the answer arrives is retried once on a fresh one (what browsers
  and httpcore2 do), so a stale socket never shows up as a failed attempt.
- **Framing and encodings.** ``http.client.HTTPResponse`` reads the status line, headers,
  ``Content-Length``, chunked and close-delimited bodies; ``gzip``/``deflate`` bodies (the SDKs
  ask for them) are decoded here. A connection goes back to the stack only once its answer has
  been read to the end and the server did not ask to close it.
- **Errors.** Socket and protocol failures are raised as the ``httpx2`` exceptions httpcore2
  would raise for them (``ConnectTimeout``, ``ReadTimeout``, ``ConnectError``, ``ReadError``,
  ``RemoteProtocolError``…), so the callers' error mapping is the same on both paths.
- **Timeouts.** One number, applied to connecting and to each read and write (httpx2's
  ``Timeout(t)``: the SDKs' per-request timeout).
- **TLS** with ``httpx2.create_ssl_context()`` (its CA bundle and ``SSL_CERT_*`` handling).
- **Forks.** A child process never reuses a socket it inherited: the stacks are emptied after
  ``fork``.

Not here: proxies and redirects. Behind an environment proxy there is no prepared path (the SDK's
own client is used); a 3xx answer is handed back like any other non-2xx status.
"""
from __future__ import annotations

import functools
import http.client
import os
import socket
import ssl
import time
import weakref
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import httpx2

from llmgate.providers.http import SocketOption
from llmgate.sockets import os_poll, socket_readable

KEEPALIVE_EXPIRY_S = 5.0  # httpx2's default
MAX_IDLE = 100  # per origin and process: the SDKs' max_keepalive_connections
READ_SIZE = 64 * 1024


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """httpx2's context (CA bundle, ``SSL_CERT_*``), loaded once per process, on the first https origin."""
    return httpx2.create_ssl_context()


class Origin:
    """Keep-alive connections to one ``scheme://host:port`` and the exchanges over them."""

    __slots__ = ("host", "port", "tls", "_options", "_ssl", "_idle", "_poll", "keepalive_expiry", "max_idle",
                 "closed", "__weakref__")

    def __init__(self, url: httpx2.URL, *, socket_options: Iterable[SocketOption] | None = None,
                 ssl_context: ssl.SSLContext | None = None, keepalive_expiry: float = KEEPALIVE_EXPIRY_S,
                 max_idle: int = MAX_IDLE) -> None:
        if url.scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL scheme {url.scheme!r}")
        self.host = url.host
        self.tls = url.scheme == "https"
        self.port = url.port or (443 if self.tls else 80)
        self._options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1), *(socket_options or ())]
        self._ssl = (ssl_context or _default_ssl_context()) if self.tls else None
        self._idle: deque[tuple[socket.socket, float]] = deque()
        self._poll = os_poll()
        self.keepalive_expiry = keepalive_expiry
        self.max_idle = max_idle
        self.closed = False
        _ORIGINS.add(self)

    # --- one exchange ---------------------------------------------------------------------------

    def exchange(self, head: bytes, body: bytes, timeout: float | None) -> Reply:
        """Send ``head`` (request line and headers, without the blank line) and ``body``; return the
        answer with its status and headers read and its body not yet."""
        data = b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)
        sock, reused = self._checkout(timeout)
        try:
            return self._send(sock, data, timeout)
        except (BrokenPipeError, ConnectionResetError) as err:  # incl. http.client.RemoteDisconnected
            if not reused:
                raise _as_httpx(err, connecting=False) from err
        except BaseException as err:
            raise _as_httpx(err, connecting=False) from err
        # The server closed the kept-alive connection as the request went out: once more, fresh.
        try:
            return self._send(self._connect(timeout), data, timeout)
        except BaseException as err:
            raise _as_httpx(err, connecting=False) from err

    def _send(self, sock: socket.socket, data: bytes, timeout: float | None) -> Reply:
        try:
            sock.settimeout(timeout)
            send_error = None
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError) as err:
                send_error = err  # a server that stopped reading early (a 413) may still have answered
            response = http.client.HTTPResponse(sock, method="POST")
            try:
                response.begin()
            except Exception:
                if send_error is not None:
                    raise send_error from None
                raise
            return Reply(self, sock, response)
        except BaseException:
            sock.close()
            raise

    # --- connections ----------------------------------------------------------------------------

    def _checkout(self, timeout: float | None) -> tuple[socket.socket, bool]:
        idle = self._idle
        now = time.monotonic()
        while True:
            try:
                sock, since = idle.pop()
            except IndexError:
                return self._connect(timeout), False
            if now - since > self.keepalive_expiry:
                sock.close()
                self._close_idle()  # the rest of the stack is older still
                return self._connect(timeout), False
            if socket_readable(sock, self._poll):  # hung up (or sent something unasked): not reusable
                sock.close()
                continue
            return sock, True

    def _connect(self, timeout: float | None) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except BaseException as err:
            raise _as_httpx(err, connecting=True) from err
        try:
            for option in self._options:
                sock.setsockopt(*option)
            if self._ssl is not None:
                sock = self._ssl.wrap_socket(sock, server_hostname=self.host)
        except BaseException as err:
            sock.close()
            raise _as_httpx(err, connecting=True) from err
        return sock

    def checkin(self, sock: socket.socket) -> None:
        if not self.closed and len(self._idle) < self.max_idle:
            self._idle.append((sock, time.monotonic()))
        else:
            sock.close()

    def _close_idle(self) -> None:
        while True:
            try:
                sock, _ = self._idle.pop()
            except IndexError:
                return
            sock.close()

    def close(self) -> None:
        """Close the idle connections; those in use close when their answers end (a catalog reload
        closes a replaced deployment's provider while its last calls may still be running)."""
        self.closed = True
        self._close_idle()

    def _forget_after_fork(self) -> None:
        # The parent still uses these connections: drop this process's copies without a word on them.
        self._idle = deque()


_ORIGINS: weakref.WeakSet[Origin] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for origin in list(_ORIGINS):
        origin._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Reply:
    """An upstream answer, shaped like the part of ``httpx2.Response`` the providers use:
    ``status_code``, ``headers``, ``is_success``, ``content``/``read()``, ``iter_bytes()``,
    ``close()``; ``httpx_response()`` gives a real one (for the SDKs' error classes)."""

    __slots__ = ("status_code", "headers", "_origin", "_sock", "_response", "_content", "_decoder", "is_closed")

    def __init__(self, origin: Origin, sock: socket.socket, response: http.client.HTTPResponse) -> None:
        self._origin = origin
        self._sock: socket.socket | None = sock
        self._response = response
        self.status_code = response.status
        self.headers = response.msg  # case-insensitive .get()
        self._content: bytes | None = None
        self._decoder = _decoder(response.getheader("content-encoding"))
        self.is_closed = False

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def read_raw(self) -> bytes:
        """The whole body as sent (not decoded); the connection goes back to the stack."""
        try:
            raw = self._response.read()
        except BaseException as err:
            self.close()
            raise _as_httpx(err, connecting=False) from err
        self._release()
        return raw

    def read(self) -> bytes:
        if self._content is None:
            raw = self.read_raw()
            self._content = raw if self._decoder is None else self._decode(raw, final=True)
        return self._content

    @property
    def content(self) -> bytes:
        return self.read()

    def iter_bytes(self) -> Iterator[bytes]:
        """The body as it arrives: each read returns what the socket has (at most ``READ_SIZE``)."""
        response = self._response
        while not self.is_closed:
            try:
                chunk = response.read1(READ_SIZE)
            except BaseException as err:
                self.close()
                raise _as_httpx(err, connecting=False) from err
            if not chunk:
                tail = self._decode(b"", final=True) if self._decoder is not None else b""
                self._release()
                if tail:
                    yield tail
                return
            if self._decoder is not None:
                chunk = self._decode(chunk)
                if not chunk:
                    continue
            yield chunk

    def _decode(self, data: bytes, *, final: bool = False) -> bytes:
        try:
            out = self._decoder.decompress(data)
            return out + self._decoder.flush() if final else out
        except zlib.error as err:
            self.close()
            raise httpx2.DecodingError(f"could not decode the upstream's body: {err}") from err

    def httpx_response(self, request: httpx2.Request) -> httpx2.Response:
        """This answer, read whole, as an ``httpx2.Response`` (which decodes the body itself)."""
        raw = self.read_raw()
        return httpx2.Response(self.status_code, headers=list(self.headers.items()), content=raw, request=request)

    def _release(self) -> None:
        """The answer is read to its end: keep the connection unless the server closes it."""
        if self.is_closed:
            return
        self.is_closed = True
        sock, self._sock = self._sock, None
        if self._response.will_close:
            sock.close()
        else:
            self._origin.checkin(sock)

    def close(self) -> None:
        """Done with the answer, read or not; an unread answer takes its connection with it."""
        if self.is_closed:
            return
        self.is_closed = True
        sock, self._sock = self._sock, None
        self._response.close()
        sock.close()


def _decoder(encoding: str | None) -> Any:
    if not encoding or encoding.strip().lower() == "identity":
        return None
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return _Deflate()
    return _Unsupported(encoding)  # an error only if the body is decoded here (not for non-2xx answers)


class _Unsupported:
    __slots__ = ("encoding",)

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding

    def decompress(self, data: bytes) -> bytes:
        raise zlib.error(f"the upstream answered in an encoding it was not offered: {self.encoding!r}")

    def flush(self) -> bytes:
        return self.decompress(b"")


class _Deflate:
    """``deflate`` as servers send it: zlib-wrapped, or (some) raw."""

    __slots__ = ("_inner", "_first")

    def __init__(self) -> None:
        self._inner = zlib.decompressobj()
        self._first = True

    def decompress(self, data: bytes) -> bytes:
        if self._first and data:
            self._first = False
            try:
                return self._inner.decompress(data)
            except zlib.error:
                self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._inner.decompress(data)

    def flush(self) -> bytes:
        return self._inner.flush()


def _as_httpx(err: BaseException, *, connecting: bool) -> BaseException:
    """The httpx2 exception httpcore2 raises for the same failure (others pass unchanged)."""
    if isinstance(err, httpx2.HTTPError) or not isinstance(err, Exception):
        return err
    message = str(err) or type(err).__name__
    if isinstance(err, (socket.timeout, TimeoutError)):
        return httpx2.ConnectTimeout(message) if connecting else httpx2.ReadTimeout(message)
    if isinstance(err, http.client.RemoteDisconnected):  # an OSError too, but a protocol failure
        return httpx2.RemoteProtocolError(message)
    if isinstance(err, OSError):  # incl. ssl.SSLError (and SSLCertVerificationError, a ValueError too)
        return httpx2.ConnectError(message) if connecting else httpx2.ReadError(message)
    if isinstance(err, (http.client.HTTPException, ValueError)):  # a malformed answer
        return httpx2.RemoteProtocolError(message)
    return err
