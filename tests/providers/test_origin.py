"""``origin.Origin``: keep-alive, stale connections, framing, encodings, timeouts and forks, against
a raw TCP server that answers each request with scripted bytes."""
import gzip
import json
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections import deque

import httpx2
import pytest
import trustme

from llmgate.providers.origin import Origin

HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\n"


def ok(body: bytes = b'{"ok":true}', *headers: bytes) -> bytes:
    extra = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s" % (
        extra, len(body), body)


def chunked(*parts: bytes, headers: bytes = b"") -> bytes:
    out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n%s\r\n" % headers
    for part in parts:
        out += b"%x\r\n%s\r\n" % (len(part), part)
    return out + b"0\r\n\r\n"


HANG_UP = "hang up"  # read the request, close without a word
CLOSE_AFTER = "close after"  # answer, then close the connection (no Connection: close header)
SILENT = "silent"  # read the request, never answer


class RawServer:
    """Answers the n-th request with ``script[n]`` (``ok()`` when the script runs out)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.script: deque = deque()
        self.connections = 0
        self.bodies: list[bytes] = []
        self._open: list[socket.socket] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    @property
    def url(self) -> httpx2.URL:
        return httpx2.URL(f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}")

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self._answer(conn)
        except OSError:  # closed under us when the test ends
            pass

    def _answer(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                self.bodies.append(buffer[:length])
                buffer = buffer[length:]
                step = self.script.popleft() if self.script else ok()
                if step == HANG_UP:
                    return
                if step == SILENT:
                    time.sleep(5)
                    return
                if isinstance(step, tuple) and step[0] == CLOSE_AFTER:
                    conn.sendall(step[1])
                    return
                if callable(step):
                    step(conn)
                else:
                    conn.sendall(step)

    def close(self) -> None:
        # shutdown() first: close() alone does not wake a thread blocked in accept() or recv(), and
        # the socket would live on, still listening, on a port the kernel may hand to the next server.
        for sock in (self.sock, *self._open):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._accepter.join(5)
        assert not self._accepter.is_alive()


@pytest.fixture
def server():
    server = RawServer()
    yield server
    server.close()


@pytest.fixture
def origin(server):
    origin = Origin(server.url)
    yield origin
    origin.close()


def test_one_connection_carries_call_after_call(server, origin):
    for n in range(3):
        reply = origin.exchange(HEAD, b'{"n":%d}' % n, 5)
        assert reply.status_code == 200 and reply.is_success
        assert reply.headers.get("content-type") == "application/json"
        assert reply.read() == b'{"ok":true}'
    assert server.connections == 1
    assert server.bodies == [b'{"n":0}', b'{"n":1}', b'{"n":2}']


def test_a_connection_the_server_closed_while_idle_is_not_reused(server, origin):
    server.script.append((CLOSE_AFTER, ok()))
    origin.exchange(HEAD, b"1", 5).read()
    time.sleep(0.1)  # the FIN arrives: the idle connection reads as hung up
    assert origin.exchange(HEAD, b"2", 5).read() == b'{"ok":true}'
    assert server.connections == 2 and server.bodies == [b"1", b"2"]


def test_a_kept_connection_that_fails_as_the_request_goes_out_is_retried_once_fresh(server, origin):
    origin.exchange(HEAD, b"1", 5).read()
    server.script.append(HANG_UP)  # the race: the server drops the kept connection as we send on it
    reply = origin.exchange(HEAD, b"2", 5)
    assert reply.read() == b'{"ok":true}'
    assert server.connections == 2 and server.bodies == [b"1", b"2", b"2"]


def test_a_fresh_connection_that_hangs_up_is_an_error_not_a_retry(server, origin):
    server.script.append(HANG_UP)
    with pytest.raises(httpx2.RemoteProtocolError):
        origin.exchange(HEAD, b"1", 5)
    assert server.connections == 1 and server.bodies == [b"1"]


def test_connection_close_is_honoured(server, origin):
    server.script.append(ok(b"{}", b"Connection: close"))
    assert origin.exchange(HEAD, b"1", 5).read() == b"{}"
    assert not origin._idle
    origin.exchange(HEAD, b"2", 5).read()
    assert server.connections == 2


def test_idle_connections_expire(server):
    origin = Origin(server.url, keepalive_expiry=0.05)
    try:
        origin.exchange(HEAD, b"1", 5).read()
        origin.exchange(HEAD, b"2", 5).read()
        assert server.connections == 1
        time.sleep(0.15)
        origin.exchange(HEAD, b"3", 5).read()
        assert server.connections == 2
    finally:
        origin.close()


def test_an_unread_answer_takes_its_connection_with_it(server, origin):
    reply = origin.exchange(HEAD, b"1", 5)
    reply.close()
    assert reply.is_closed and not origin._idle
    origin.exchange(HEAD, b"2", 5).read()
    assert server.connections == 2


def test_a_connection_in_use_when_its_origin_closes_is_not_kept(server, origin):
    reply = origin.exchange(HEAD, b"1", 5)
    origin.close()
    assert reply.read() == b'{"ok":true}'
    assert not origin._idle


def test_idle_connections_are_capped(server):
    origin = Origin(server.url, max_idle=1)
    try:
        first, second = origin.exchange(HEAD, b"1", 5), origin.exchange(HEAD, b"2", 5)
        first.read()
        second.read()
        assert len(origin._idle) == 1 and server.connections == 2
    finally:
        origin.close()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw deflate"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_compressed_bodies_are_decoded(server, origin, encoding, framing):
    text = b'{"answer":"' + b"la " * 2000 + b'"}'
    if encoding == "gzip":
        packed = gzip.compress(text)
    else:
        packer = zlib.compressobj(wbits=zlib.MAX_WBITS if encoding == "deflate" else -zlib.MAX_WBITS)
        packed = packer.compress(text) + packer.flush()
    name = b"Content-Encoding: " + encoding.split()[-1].encode()
    for _ in range(2):  # once read whole, once streamed
        if framing == "length":
            server.script.append(ok(packed, name))
        else:
            server.script.append(chunked(packed[:10], packed[10:100], packed[100:], headers=name + b"\r\n"))
    assert origin.exchange(HEAD, b"1", 5).read() == text
    assert b"".join(origin.exchange(HEAD, b"2", 5).iter_bytes()) == text
    assert server.connections == 1  # both read to the end: the connection was kept


def test_a_body_that_does_not_decode_is_an_error(server, origin):
    server.script.append(ok(b"not gzip at all", b"Content-Encoding: gzip"))
    with pytest.raises(httpx2.DecodingError):
        origin.exchange(HEAD, b"1", 5).read()


def test_an_encoding_that_was_not_offered_is_an_error_when_read(server, origin):
    server.script.append(ok(b"\x00\x01", b"Content-Encoding: br"))
    reply = origin.exchange(HEAD, b"1", 5)  # status and headers are still readable
    assert reply.status_code == 200
    with pytest.raises(httpx2.DecodingError, match="br"):
        reply.read()


def test_a_stream_arrives_as_it_is_sent(server, origin):
    release = threading.Event()

    def slow(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        release.wait(5)
        conn.sendall(b"6\r\nsecond\r\n0\r\n\r\n")

    server.script.append(slow)
    chunks = origin.exchange(HEAD, b"1", 5).iter_bytes()
    assert next(chunks) == b"first"  # before the rest was even sent
    release.set()
    assert list(chunks) == [b"second"]
    assert len(origin._idle) == 1


def test_a_stream_cut_short_raises_an_httpx_error(server, origin):
    server.script.append((CLOSE_AFTER, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n"))
    chunks = origin.exchange(HEAD, b"1", 5).iter_bytes()
    assert next(chunks) == b"first"
    with pytest.raises(httpx2.TransportError):
        list(chunks)
    assert not origin._idle


def test_timeouts_and_refusals_are_httpx_errors(server, origin):
    server.script.append(SILENT)
    started = time.monotonic()
    with pytest.raises(httpx2.ReadTimeout):
        origin.exchange(HEAD, b"1", 0.2)
    assert time.monotonic() - started < 2
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nobody = Origin(httpx2.URL(f"http://127.0.0.1:{sock.getsockname()[1]}"))
    with pytest.raises(httpx2.ConnectError):
        nobody.exchange(HEAD, b"1", 1)


def test_a_non_2xx_answer_becomes_an_httpx_response_that_decodes_itself(server, origin):
    body = gzip.compress(b'{"error":{"message":"slow down"}}')
    server.script.append(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Encoding: gzip\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    reply = origin.exchange(HEAD, b"1", 5)
    assert not reply.is_success
    response = reply.httpx_response(httpx2.Request("POST", server.url))
    assert response.status_code == 429 and response.headers["retry-after"] == "3"
    assert response.json() == {"error": {"message": "slow down"}}
    assert len(origin._idle) == 1  # read to its end: kept


def test_a_forked_child_does_not_reuse_its_parents_connections(server, origin):
    origin.exchange(HEAD, b"1", 5).read()
    assert len(origin._idle) == 1
    pid = os.fork()
    if pid == 0:  # the child
        os._exit(0 if not origin._idle else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(origin._idle) == 1  # the parent keeps its own
    origin.exchange(HEAD, b"2", 5).read()
    assert server.connections == 1


def test_only_http_and_https():
    with pytest.raises(ValueError, match="scheme"):
        Origin(httpx2.URL("ftp://example.com"))


# --- TLS ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def tls_server(ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = RawServer(tls=context)
    yield server
    server.close()


def test_tls_with_a_trusted_certificate(ca, tls_server):
    context = ssl.create_default_context()
    ca.configure_trust(context)
    origin = Origin(tls_server.url, ssl_context=context)
    try:
        tls_server.script.extend([ok(), chunked(b"first ", b"second")])
        assert origin.exchange(HEAD, b"1", 5).read() == b'{"ok":true}'
        assert b"".join(origin.exchange(HEAD, b"2", 5).iter_bytes()) == b"first second"
        assert tls_server.connections == 1 and tls_server.bodies == [b"1", b"2"]
    finally:
        origin.close()


def test_by_default_certificates_are_verified(tls_server):
    origin = Origin(tls_server.url)  # httpx2's context: the CA bundle does not know this test CA
    with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        origin.exchange(HEAD, b"1", 5)
    assert tls_server.bodies == []


def test_a_provider_over_https_trusts_what_ssl_cert_file_names(ca, tls_server, tmp_path):
    """End to end in a fresh process: an openai deployment on https, prepared path, the CA given
    the way an operator would (SSL_CERT_FILE, read by httpx2.create_ssl_context)."""
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    answer = json.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).encode()
    tls_server.script.extend([ok(answer), ok(answer)])
    code = textwrap.dedent(f"""
        from llmgate.providers.base import Deployment
        from llmgate.providers.registry import build_provider
        provider = build_provider(Deployment(name="x", provider="openai", model="m", api_key="k",
                                             api_base="{tls_server.url}/v1"))
        assert provider._chat.prepared
        for _ in range(2):
            result = provider.chat({{"model": "m", "messages": [{{"role": "user", "content": "hi"}}]}}, stream=False)
            assert result.status == 200 and result.usage.total_tokens == 4, result
        print("ok")
    """)
    env = {**os.environ, "SSL_CERT_FILE": str(ca_file)}
    env.pop("SSL_CERT_DIR", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
    assert tls_server.connections == 1 and len(tls_server.bodies) == 2
