"""The Redis client's pooled-connection check (llmgate.redis_client) against a real server."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from llmgate import redis_client
from llmgate.extensions import get_redis


def test_the_app_client_uses_the_quick_check(app):
    pool = get_redis(app).connection_pool
    assert pool.connection_class in (redis_client.TCPConnection, redis_client.UnixConnection)


def test_can_read_tells_idle_from_dirty(app):
    client = get_redis(app)
    assert client.ping()
    conn = client.connection_pool.get_connection()
    try:
        assert conn.can_read() is False  # idle: nothing buffered, nothing on the socket
        conn.send_command("PING")
        deadline = time.monotonic() + 5
        while not conn.can_read():  # the reply arrives: dirty until it is read
            assert time.monotonic() < deadline
            time.sleep(0.001)
        assert conn.read_response() in (b"PONG", "PONG", True)
        assert conn.can_read() is False
    finally:
        client.connection_pool.release(conn)


@pytest.mark.once
def test_under_gevent_the_check_uses_the_os_poll(app):
    url = app.config["REDIS_URL"]
    script = textwrap.dedent(f"""
        from gevent import monkey; monkey.patch_all()
        import select, gevent.select
        from llmgate import redis_client
        client = redis_client.from_url({url!r})
        for _ in range(3):
            assert client.ping()
        assert redis_client._QuickIdleCheck._poll is monkey.get_original("select", "poll")
        assert redis_client._QuickIdleCheck._poll is not gevent.select.poll
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


def test_lean_packer_packs_what_redis_py_packs():
    import redis
    from redis.connection import HiredisRespSerializer

    lean, reference = redis_client.LeanPacker(), HiredisRespSerializer()
    for args in [("EVALSHA", "f" * 40, 2, "k:1", "k:2", 0, "id", 12, 1.5, b"raw\x00bytes", "é"),
                 ("SCRIPT LOAD", "return 1"), (b"SCRIPT LOAD", "return 1"), (bytearray(b"SCRIPT LOAD"), "x"),
                 ("SET", "k", bytearray(b"v")), ("SET", "k", memoryview(b"v"))]:
        assert lean.pack(*args) == reference.pack(*args), args
    with pytest.raises(redis.exceptions.DataError):
        lean.pack("SET", "k", None)


def test_the_app_client_packs_with_the_lean_packer_and_works(app):
    client = get_redis(app)
    conn = client.connection_pool.get_connection()
    try:
        assert isinstance(conn._command_packer, redis_client.LeanPacker)
    finally:
        client.connection_pool.release(conn)
    assert client.set("llmgate:test:packer", bytearray(b"ab")) and client.get("llmgate:test:packer") == b"ab"
    assert client.evalsha(client.script_load("return ARGV[1]"), 0, "é") == "é".encode()
