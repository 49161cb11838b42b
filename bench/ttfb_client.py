"""A small closed-loop HTTP/1.1 client (gevent, raw sockets, keep-alive) that measures streams.

wrk only sees a response when it is complete; for a streamed answer we also want the time to
the first event (TTFB: request sent → first body chunk). ``-c`` connections each send one
request after another until ``--duration`` seconds or ``--max-requests`` have passed, then one
JSON line is printed (``BENCH_JSON {...}``) with TTFB and full-response percentiles in µs.
Loopback only.

    python bench/ttfb_client.py --url http://127.0.0.1:8000/v1/chat/completions \\
        --body '{"model": "m", "stream": true, "messages": [...]}' --auth sk-... -c 16 --duration 3
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import gevent  # noqa: E402

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Conn:
    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by server")
        self.buf += data

    def _line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            self._fill()

    def _take(self, n: int) -> None:
        while len(self.buf) < n:
            self._fill()
        del self.buf[:n]

    def exchange(self, request: bytes) -> tuple[int, float, float, bool]:
        """Send one request; return (status, ttfb_s, total_s, keep_alive)."""
        t0 = time.perf_counter()
        self.sock.sendall(request)
        status = int(self._line().split(b" ", 2)[1])
        length, chunked, keep = None, False, True
        while True:
            line = self._line()
            if not line:
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
        ttfb = None
        if chunked:
            while True:
                size = int(self._line().split(b";")[0] or b"0", 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                if not self.buf:
                    self._fill()
                if ttfb is None:
                    ttfb = time.perf_counter() - t0
                self._take(size + 2)
        elif length is not None:
            if length:
                if not self.buf:
                    self._fill()
                ttfb = time.perf_counter() - t0
                self._take(length)
        else:  # body until close
            keep = False
            try:
                while True:
                    self._fill()
                    if ttfb is None:
                        ttfb = time.perf_counter() - t0
            except ConnectionError:
                pass
        total = time.perf_counter() - t0
        return status, (ttfb if ttfb is not None else total), total, keep

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def percentiles(values: list[float], points=(50, 90, 99, 99.9)) -> dict[str, int]:
    if not values:
        return {str(p): 0 for p in points}
    ordered = sorted(values)
    out = {}
    for p in points:
        rank = max(0, min(len(ordered) - 1, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))
        out[str(p)] = int(ordered[rank] * 1e6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True)
    parser.add_argument("--auth", default="")
    parser.add_argument("-c", "--connections", type=int, default=1)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    url = urlsplit(args.url)
    if url.hostname not in LOOPBACK:
        raise SystemExit("bench/ttfb_client.py only talks to loopback addresses")
    host, port = url.hostname, url.port or 80
    body = args.body.encode()
    headers = [f"POST {url.path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
               f"Content-Length: {len(body)}", "Accept: text/event-stream"]
    if args.auth:
        headers.append(f"Authorization: Bearer {args.auth}")
    request = ("\r\n".join(headers) + "\r\n\r\n").encode() + body

    ttfbs: list[float] = []
    totals: list[float] = []
    counts = {"requests": 0, "non2xx": 0, "errors": 0}
    deadline = time.perf_counter() + args.duration

    def worker() -> None:
        conn = None
        while time.perf_counter() < deadline and counts["requests"] < args.max_requests:
            try:
                if conn is None:
                    conn = Conn(host, port, args.timeout)
                status, ttfb, total, keep = conn.exchange(request)
                counts["requests"] += 1
                if 200 <= status < 300:
                    ttfbs.append(ttfb)
                    totals.append(total)
                else:
                    counts["non2xx"] += 1
                if not keep:
                    conn.close()
                    conn = None
            except (OSError, ConnectionError, ValueError, IndexError):
                counts["errors"] += 1
                if conn is not None:
                    conn.close()
                conn = None
                gevent.sleep(0.01)
        if conn is not None:
            conn.close()

    started = time.perf_counter()
    gevent.joinall([gevent.spawn(worker) for _ in range(args.connections)], timeout=args.duration + args.timeout + 5)
    elapsed = time.perf_counter() - started
    print("BENCH_JSON " + json.dumps({
        "duration_us": int(elapsed * 1e6), **counts, "ok": len(ttfbs),
        "ttfb_us": percentiles(ttfbs), "total_us": percentiles(totals),
    }), flush=True)


if __name__ == "__main__":
    main()
