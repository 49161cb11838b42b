"""A lean, fast fake OpenAI upstream for benchmarks: gevent, raw HTTP/1.1, pre-rendered answers.

It must never be the bottleneck of a baseline, so it does the least a real upstream does:
parse the request line, headers and ``Content-Length`` body (keep-alive), look at ``stream``
and ``stream_options.include_usage``, wait ``--delay-ms`` (cooperatively) and send a
pre-rendered OpenAI chat completion, or the same answer as SSE chunks (``data: …`` events
ending in ``data: [DONE]``), chunked like a real upstream. ``GET /v1/models`` answers too.

    python bench/fake_upstream.py --port 9100 --delay-ms 50

A ``x-fake-delay-ms`` request header overrides the delay for that request. Only binds loopback.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from gevent.server import StreamServer  # noqa: E402

WORDS = "the quick brown fox jumps over the lazy dog".split()
CHUNKS = 10  # content deltas per streamed answer (plus role, finish, optional usage, [DONE])


def _completion() -> bytes:
    text = " ".join(WORDS + ["."])
    body = {
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "fake-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": CHUNKS, "total_tokens": 12 + CHUNKS},
        "system_fingerprint": "fp_bench",
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None, choices: bool = True) -> bytes:
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "fake-model", "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else []}
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def _chunked(events: list[bytes]) -> bytes:
    """HTTP/1.1 chunked framing, one chunk per SSE event, plus the terminating chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"


def _stream_events(include_usage: bool) -> tuple[bytes, bytes]:
    """(first event, the rest) as chunked bytes: the first is flushed alone so TTFB means something."""
    events = [_chunk({"role": "assistant", "content": ""})]
    words = WORDS + ["."]
    events += [_chunk({"content": (" " if i else "") + w}) for i, w in enumerate(words[:CHUNKS])]
    events.append(_chunk({}, finish="stop"))
    if include_usage:
        events.append(_chunk({}, usage={"prompt_tokens": 12, "completion_tokens": CHUNKS,
                                        "total_tokens": 12 + CHUNKS}, choices=False))
    events.append(b"data: [DONE]\n\n")
    first = b"%x\r\n%s\r\n" % (len(events[0]), events[0])
    return first, _chunked(events[1:])


COMPLETION = _completion()
JSON_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
             b"Connection: keep-alive\r\n\r\n" % len(COMPLETION))
SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n")
STREAM = {False: _stream_events(False), True: _stream_events(True)}
MODELS = json.dumps({"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0,
                                                 "owned_by": "bench"}]}).encode()
MODELS_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                   % (len(MODELS), MODELS))
NOT_FOUND = (b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 21\r\n\r\n"
             b'{"error":"no route"}\n')


def _read_chunked(rfile) -> bytes:
    parts = []
    while True:
        size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        parts.append(rfile.read(size))
        rfile.readline()


def make_handler(default_delay_s: float):
    def handle(sock, _address) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # events leave when written
        rfile = sock.makefile("rb")
        try:
            while True:
                request_line = rfile.readline(65537)
                if not request_line:
                    return
                if request_line in (b"\r\n", b"\n"):
                    continue
                method, path = request_line.split(b" ", 2)[:2]
                length, chunked, close, delay_s = 0, False, False, default_delay_s
                while True:
                    line = rfile.readline(65537)
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"transfer-encoding" and b"chunked" in value.lower():
                        chunked = True
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                    elif name == b"x-fake-delay-ms":
                        delay_s = float(value) / 1000.0
                body = _read_chunked(rfile) if chunked else (rfile.read(length) if length else b"")
                if method == b"GET" and path.startswith(b"/v1/models"):
                    sock.sendall(MODELS_RESPONSE)
                elif method == b"POST" and path.endswith(b"/chat/completions"):
                    stream = include_usage = False
                    if b'"stream"' in body:  # only parse what can change the answer
                        request = json.loads(body)
                        stream = bool(request.get("stream"))
                        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
                    if delay_s:
                        gevent.sleep(delay_s)
                    if stream:
                        first, rest = STREAM[include_usage]
                        sock.sendall(SSE_HEAD + first)
                        gevent.sleep(0)  # let the first event leave on its own, as a real upstream's would
                        sock.sendall(rest)
                    else:
                        sock.sendall(JSON_HEAD + COMPLETION)
                else:
                    sock.sendall(NOT_FOUND)
                if close:
                    return
        except (ConnectionError, OSError, ValueError):
            return
        finally:
            rfile.close()
            sock.close()

    return handle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "localhost", "::1"])
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="wait before every answer")
    parser.add_argument("--max-seconds", type=float, default=3600.0,
                        help="exit after this long at most (a forgotten fake never lingers)")
    args = parser.parse_args()
    server = StreamServer((args.host, args.port), make_handler(args.delay_ms / 1000.0), backlog=1024)
    server.start()
    print(f"fake upstream on http://{args.host}:{args.port}/v1 (delay {args.delay_ms} ms)", flush=True)
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline:
        gevent.sleep(1.0)
    server.stop(timeout=1)


if __name__ == "__main__":
    main()
