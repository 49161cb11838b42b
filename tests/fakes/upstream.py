"""A fake OpenAI + Anthropic upstream on real HTTP, scriptable from tests, and a lean gevent mode for benchmarks.

One server answers both formats: ``POST /v1/chat/completions``, ``/v1/embeddings``, ``GET /v1/models``
(OpenAI; SDK ``base_url`` = ``openai_base_url``) and ``POST /v1/messages`` (Anthropic; ``base_url``).
Benchmark mode: ``python -m tests.fakes.upstream --port 9100 --delay-ms 20``.
"""
if __name__ == "__main__":
    # Patch before anything imports socket/threading, so the lean server is fully cooperative.
    from gevent import monkey

    monkey.patch_all()

import argparse
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.fakes import wire


@dataclass(frozen=True)
class Behaviour:
    """What the fake does for one request; the defaults give a normal deterministic answer."""

    status: int = 200
    message: str = "scripted failure"   # error message when status >= 400
    code: str | None = None              # OpenAI error code, e.g. "context_length_exceeded"
    retry_after: str | None = None       # Retry-After header value
    retry_after_ms: str | None = None    # retry-after-ms header value
    delay_s: float = 0.0                 # before anything is sent (the SDK's timeout covers this)
    event_delay_s: float = 0.0           # between stream events (slow first byte: use delay_s)
    disconnect_after: int | None = None  # stream: drop the connection after this many events
    text: str | None = None              # reply text instead of the echo
    tool: tuple[str, dict[str, Any]] | None = None  # reply with this tool call
    json_reply: dict[str, Any] | None = None        # reply text = this JSON
    raw_body: bytes | None = None        # send exactly these bytes (status as given)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes


@dataclass
class StreamRecord:
    path: str
    events_sent: int = 0
    finished: bool = False
    aborted: bool = False  # the client went away before the end
    done: threading.Event = field(default_factory=threading.Event)


class FakeApp:
    """The WSGI application, shared by the threaded test server and the gevent benchmark server."""

    def __init__(self, *, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.requests: list[Received] = []
        self.streams: list[StreamRecord] = []
        self.record = True
        self._script: deque[Behaviour] = deque()
        self._lock = threading.Lock()

    def script(self, *behaviours: Behaviour, times: int = 1, **fields: Any) -> None:
        """Queue behaviours for the next requests, in order (``script(status=429, retry_after="2")``)."""
        with self._lock:
            for behaviour in behaviours or (Behaviour(**fields),):
                self._script.extend([behaviour] * times)

    def _next(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else Behaviour()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        body = json.loads(raw) if raw else None
        if self.record:
            headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
            headers["content-type"] = environ.get("CONTENT_TYPE", "")
            with self._lock:
                self.requests.append(Received(path, headers, body, raw))
        behaviour = self._next()
        if behaviour.delay_s or self.delay_s:
            time.sleep(behaviour.delay_s + self.delay_s)
        wire_format = "anthropic" if path == "/v1/messages" else "openai"
        if behaviour.raw_body is not None:
            return self._send(start_response, behaviour.status, behaviour.raw_body, behaviour)
        if behaviour.status >= 400:
            error = (wire.anthropic_error(behaviour.status, behaviour.message) if wire_format == "anthropic"
                     else wire.openai_error(behaviour.status, behaviour.message, behaviour.code))
            return self._send(start_response, behaviour.status, _dumps(error).encode(), behaviour)
        if method == "GET" and path == "/v1/models":
            models = {"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0,
                                                  "owned_by": "fake"}]}
            return self._send(start_response, 200, _dumps(models).encode(), behaviour)
        if path == "/v1/embeddings":
            return self._send(start_response, 200, _dumps(wire.embedding(body)).encode(), behaviour)
        if path not in ("/v1/chat/completions", "/v1/messages"):
            return self._send(start_response, 404, _dumps(wire.openai_error(404, "no route")).encode(),
                              behaviour)
        text = _dumps(behaviour.json_reply) if behaviour.json_reply is not None else behaviour.text
        reply = wire.decide(body, wire_format, text=text, tool=behaviour.tool)
        if body.get("stream"):
            start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
            return self._stream(environ, path, wire_format, body, reply, behaviour)
        answer = (wire.anthropic_message(body, reply) if wire_format == "anthropic"
                  else wire.openai_completion(body, reply))
        return self._send(start_response, 200, _dumps(answer).encode(), behaviour)

    @staticmethod
    def _send(start_response: Any, status: int, payload: bytes, behaviour: Behaviour) -> list[bytes]:
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        if behaviour.retry_after is not None:
            headers.append(("Retry-After", behaviour.retry_after))
        if behaviour.retry_after_ms is not None:
            headers.append(("retry-after-ms", behaviour.retry_after_ms))
        start_response(f"{status} FAKE", headers)
        return [payload]

    def _stream(self, environ: dict[str, Any], path: str, wire_format: str, body: dict[str, Any],
                reply: wire.Reply, behaviour: Behaviour) -> Iterator[bytes]:
        if wire_format == "anthropic":
            events = [f"event: {name}\ndata: {_dumps(data)}\n\n".encode()
                      for name, data in wire.anthropic_events(body, reply)]
        else:
            events = [f"data: {_dumps(c)}\n\n".encode() for c in wire.openai_chunks(body, reply)]
            events.append(b"data: [DONE]\n\n")
        record = StreamRecord(path)
        with self._lock:
            self.streams.append(record)
        try:
            for event in events:
                if behaviour.disconnect_after is not None and record.events_sent >= behaviour.disconnect_after:
                    _drop_connection(environ)
                    return
                if behaviour.event_delay_s and record.events_sent:
                    time.sleep(behaviour.event_delay_s)
                yield event
                record.events_sent += 1
            record.finished = True
        except GeneratorExit:
            # The server closes the iterator when a write fails: the client has gone away.
            record.aborted = True
            raise
        finally:
            if not record.finished and behaviour.disconnect_after is None:
                record.aborted = True
            record.done.set()


def _dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))  # compact, as the real APIs send


def _drop_connection(environ: dict[str, Any]) -> None:
    """Cut the TCP connection mid-body, as a crashed upstream or proxy would."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        sock.shutdown(socket.SHUT_RDWR)


class FakeUpstream:
    """A running fake server for tests: ``with FakeUpstream() as fake: ... fake.base_url``."""

    def __init__(self, *, delay_s: float = 0.0) -> None:
        self.app = FakeApp(delay_s=delay_s)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # The app's recording and scripting, reachable from the handle.
    requests = property(lambda self: self.app.requests)
    streams = property(lambda self: self.app.streams)
    script = property(lambda self: self.app.script)

    @property
    def delay_s(self) -> float:
        return self.app.delay_s

    @delay_s.setter
    def delay_s(self, value: float) -> None:
        self.app.delay_s = value

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    def start(self) -> "FakeUpstream":
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Handler(WSGIRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, like real upstreams

            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        self._server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def reset(self) -> None:
        with self.app._lock:
            self.app.requests.clear()
            self.app.streams.clear()
            self.app._script.clear()
        self.app.delay_s = 0.0

    def last(self) -> Received:
        return self.app.requests[-1]

    def __enter__(self) -> "FakeUpstream":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="added before every answer")
    args = parser.parse_args()
    from gevent.pywsgi import WSGIServer

    class NoDelayServer(WSGIServer):
        def handle(self, sock: Any, address: Any) -> None:
            # pywsgi writes headers and body separately: without this, Nagle plus the
            # client's delayed ACK adds ~40 ms to every response.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().handle(sock, address)

    app = FakeApp(delay_s=args.delay_ms / 1000.0)
    app.record = False  # a benchmark must not grow memory per request
    print(f"fake upstream on http://{args.host}:{args.port} (openai: /v1, delay {args.delay_ms} ms)", flush=True)
    NoDelayServer((args.host, args.port), app, log=None, error_log=None).serve_forever()


if __name__ == "__main__":
    main()
