"""The providers' httpx2 client: the OS poll for idle-connection probes, head and body in one write."""
import select
import socket
import subprocess
import sys
import textwrap

import httpcore2
import httpx2
import pytest

from llmgate.providers.http import (
    MAX_PENDING_WRITE, JoinedWriteStream, PoolSet, ProviderTransport, http_client, socket_readable,
    tcp_keepalive_options,
)


class RecordingStream(httpcore2.NetworkStream):
    """A network stream double: records what is written, answers reads from a script."""

    def __init__(self, *, fail_writes: bool = False) -> None:
        self.writes: list[bytes] = []
        self.reads = 0
        self.closed = False
        self.fail_writes = fail_writes

    def write(self, buffer, timeout=None):
        if self.fail_writes:
            raise httpcore2.WriteError("peer closed")
        self.writes.append(bytes(buffer))

    def read(self, max_bytes, timeout=None):
        self.reads += 1
        return b"HTTP/1.1 200 OK\r\n\r\n"

    def close(self):
        self.closed = True

    def get_extra_info(self, info):
        return None


def test_head_and_body_go_out_in_one_write_before_the_read():
    inner = RecordingStream()
    stream = JoinedWriteStream(inner, select.poll)
    stream.write(b"POST / HTTP/1.1\r\n\r\n")
    stream.write(b'{"a":1}')
    stream.write(b"")  # h11's end of a Content-Length body
    assert inner.writes == []
    stream.read(100)
    assert inner.writes == [b'POST / HTTP/1.1\r\n\r\n{"a":1}'] and inner.reads == 1
    stream.read(100)  # nothing pending: no empty write
    assert len(inner.writes) == 1


def test_large_bodies_are_not_held_back():
    inner = RecordingStream()
    stream = JoinedWriteStream(inner, select.poll)
    stream.write(b"head")
    stream.write(b"x" * MAX_PENDING_WRITE)
    assert inner.writes == [b"head" + b"x" * MAX_PENDING_WRITE]


def test_a_failed_write_still_reads_the_answer():
    # httpcore2 ignores a failed request write and reads: the server may have answered early (413…).
    inner = RecordingStream(fail_writes=True)
    stream = JoinedWriteStream(inner, select.poll)
    stream.write(b"head")
    assert stream.read(100).startswith(b"HTTP/1.1 200") and inner.reads == 1


def test_close_drops_what_was_pending():
    inner = RecordingStream()
    stream = JoinedWriteStream(inner, select.poll)
    stream.write(b"head")
    stream.close()
    assert inner.closed and inner.writes == []


def test_socket_readable_means_data_or_hang_up():
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    try:
        assert socket_readable(client) is False
        peer.sendall(b"x")
        peer.close()
        assert socket_readable(client) is True
        assert socket_readable(None) is True
    finally:
        client.close()
        server.close()


def test_requests_go_through_the_joined_write_stream(fake):
    client = http_client(timeout=5)
    assert client is not None
    try:
        for _ in range(3):
            response = client.post(fake.openai_base_url + "/chat/completions",
                                   json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
            assert response.status_code == 200 and response.json()["object"] == "chat.completion"
            assert isinstance(response.extensions["network_stream"], JoinedWriteStream)
        assert len(fake.requests) == 3 and fake.requests[-1].body["model"] == "m"
    finally:
        client.close()


def test_requests_are_dealt_over_pools_sharing_the_limits(fake):
    transport = ProviderTransport(limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=100), pools=4)
    pools = transport._pool.pools
    assert len(pools) == 4
    assert all(p._max_connections == 250 and p._max_keepalive_connections == 25 for p in pools)
    served = {id(p): 0 for p in pools}
    for pool in pools:  # count, then let the real pool answer
        pool.handle_request = (lambda inner, key: lambda request: (served.__setitem__(key, served[key] + 1),
                                                                   inner(request))[1])(pool.handle_request, id(pool))
    client = httpx2.Client(transport=transport, timeout=5)
    try:
        for _ in range(8):
            response = client.post(fake.openai_base_url + "/chat/completions",
                                   json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
            assert response.status_code == 200
    finally:
        client.close()
    assert sorted(served.values()) == [2, 2, 2, 2]  # in turn
    assert len(fake.requests) == 8


def test_closing_a_pool_set_closes_every_pool():
    closed = []

    class Pool:
        def __init__(self, name):
            self.name = name

        def handle_request(self, request):
            return self.name

        def close(self):
            closed.append(self.name)

    pools = PoolSet([Pool("a"), Pool("b")])
    assert [pools.handle_request(None) for _ in range(3)] == ["a", "b", "a"]
    with pools:
        pass
    assert closed == ["a", "b"]


def test_socket_options_reach_the_socket(fake):
    transport = ProviderTransport(socket_options=tcp_keepalive_options())
    with httpx2.Client(transport=transport) as client:
        with client.stream("GET", fake.openai_base_url + "/models") as response:
            sock = response.extensions["network_stream"].get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1


def test_an_environment_proxy_leaves_the_sdk_its_own_client(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert http_client(timeout=5) is None


@pytest.mark.once
def test_under_gevent_the_probe_uses_the_os_poll(fake):
    # In a fresh process, as gunicorn's gevent worker runs: select is patched, the probe's poll is not.
    script = textwrap.dedent(f"""
        from gevent import monkey; monkey.patch_all()
        import select, gevent.select
        from llmgate import sockets
        from llmgate.providers import http
        assert select.poll is gevent.select.poll
        assert sockets.os_poll() is monkey.get_original("select", "poll") is not gevent.select.poll
        client = http.http_client(timeout=5)
        for _ in range(3):
            assert client.get({fake.openai_base_url + "/models"!r}).status_code == 200
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr
