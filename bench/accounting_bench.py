"""What accounting adds to one upstream call: admit + settle, in µs, against a bare Redis PING.

    python bench/accounting_bench.py [--redis redis://127.0.0.1:6379/13] [--n 5000]

Runs in one process against a real Redis (flushes the chosen database). Cases: a principal with
no limits or budgets (admit makes no round trip; settle makes one), one with key + user limits,
budgets and deployment limits (one round trip each). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402
from flask import Flask  # noqa: E402

from llmgate.accounting import gate  # noqa: E402
from llmgate.auth.principal import Budget, Limits  # noqa: E402
from llmgate.extensions import REDIS_KEY  # noqa: E402
from llmgate.providers.base import Limits as DeploymentLimits, Usage  # noqa: E402
from tests.accounting.conftest import make_deployment, make_principal  # noqa: E402


def _percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def _time(fn, n: int) -> list[float]:
    for _ in range(min(200, n)):  # warm up (EVALSHA cache, connections)
        fn()
    out = []
    for _ in range(n):
        start = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - start) / 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis)
    client.flushdb()
    app = Flask("bench")
    app.config.update(CONCURRENCY_LEASE_S=600, RATE_LIMIT_FAIL_OPEN=False)
    app.extensions[REDIS_KEY] = client
    usage = Usage(200, 50)
    cases = {
        "no limits, no budgets": (make_principal(), make_deployment()),
        "key+user rpm/tpm/concurrency, 2 budgets, deployment limits": (
            make_principal(key_limits=Limits(rpm=10**9, tpm=10**12, max_concurrency=10**6),
                           user_limits=Limits(rpm=10**9, tpm=10**12, max_concurrency=10**6),
                           key_budget=Budget(10**9, "month"), user_budget=Budget(10**9, "day", 10**8)),
            make_deployment(limits=DeploymentLimits(rpm=10**9, tpm=10**12, max_concurrency=10**6))),
    }
    ping = _time(client.ping, args.n)
    ping_p50, ping_p99 = _percentiles(ping)
    print(f"Redis {args.redis}, n={args.n}\n")
    print("| case | admit p50 | settle p50 | admit+settle p50 / p99 (µs) | ÷ PING p50 |")
    print("|---|---|---|---|---|")
    print(f"| bare Redis PING | | | {ping_p50:.0f} / {ping_p99:.0f} | 1.0 |")
    with app.app_context():
        for name, (principal, deployment) in cases.items():
            admits, settles, both = [], [], []
            for _ in range(args.n):
                t0 = time.perf_counter_ns()
                admission = gate.admit(principal=principal, deployment=deployment, estimated_tokens=250, attempt=0)
                t1 = time.perf_counter_ns()
                gate.settle(admission, usage=usage, outcome="ok", error_kind=None, latency_ms=1.0, ttft_ms=None,
                            request_id="bench")
                t2 = time.perf_counter_ns()
                admits.append((t1 - t0) / 1000)
                settles.append((t2 - t1) / 1000)
                both.append((t2 - t0) / 1000)
            p50, p99 = _percentiles(both)
            print(f"| {name} | {statistics.median(admits):.0f} | {statistics.median(settles):.0f} | "
                  f"{p50:.0f} / {p99:.0f} | {p50 / ping_p50:.1f} |")
    client.flushdb()


if __name__ == "__main__":
    main()
