#!/usr/bin/env python3
"""CPU per proxied request, in process: the number that survives a noisy shared machine.

    .venv/bin/python bench/hotpath_bench.py [--n 2000] [--rounds 5] [--only view,provider,floor]

Runs under gevent's monkey patching (as gunicorn's gevent worker does), against
``bench/fake_upstream.py`` (0 ms) and a private ``redis-server``, with an instance folder set up
through the CLI like ``gateway_bench.py`` (SQLite, a user, a key, models.yaml, prometheus
multiprocess mode). Each round sends ``--n`` sequential requests and reports the process's CPU
time (user + system) per request; the best round is the figure (the others are other jobs'
noise). What is measured:

- ``view``: ``POST /v1/chat/completions`` through the Flask app (werkzeug test client): key
  auth, routing, admit/settle, the upstream call, metrics, the access log — everything but
  gunicorn's HTTP parsing and socket writes.
- ``provider``: ``provider.chat`` alone (the SDK / httpx2 / httpcore2 part).
- ``floor``: a bare Flask view forwarding through a shared ``httpx2.Client`` (``bench/flask_floor.py``)
  through the same test client, so ``view − floor`` is llmgate's own cost.

The test client itself costs the same in ``view`` and ``floor``.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench import gateway_bench as gb  # noqa: E402


TERMINAL = sys.stdout


def say(text: str) -> None:
    print(text, file=TERMINAL, flush=True)


def cpu() -> float:
    return time.process_time()


def run(fn, n: int, concurrency: int) -> None:
    if concurrency == 1:
        for _ in range(n):
            fn()
        return
    import gevent.pool

    def loop(count: int) -> None:
        for _ in range(count):
            fn()

    group = gevent.pool.Group()
    for i in range(concurrency):
        group.spawn(loop, n // concurrency + (1 if i < n % concurrency else 0))
    group.join(raise_error=True)


def rounds(label: str, fn, n: int, count: int, concurrency: int = 1) -> float:
    run(fn, min(200, n), concurrency)  # warm: pools, caches, first-call imports
    results = []
    for _ in range(count):
        start = cpu()
        run(fn, n, concurrency)
        results.append(1e6 * (cpu() - start) / n)
    best = min(results)
    say(f"{label:10s} c={concurrency} best {best:7.0f} µs/req   rounds: {' '.join(f'{r:.0f}' for r in results)}")
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="view,provider,floor")
    parser.add_argument("--concurrency", "-c", type=int, default=16,
                        help="greenlets sending at once (the pool then holds this many connections)")
    parser.add_argument("--stream", action="store_true", help="streamed requests instead of whole answers")
    args = parser.parse_args()
    only = set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="llmgate-hotpath-"))
    try:
        direct = gb.start_fakes(work, [0], "bench")
        gate = gb.Llmgate(work, direct, [0], argparse.Namespace(database_url=None, redis_url=None, redis="local"))
        gate.setup()
        metrics_dir = work / "metrics"
        metrics_dir.mkdir()
        os.environ.update(gate.env)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        os.chdir(gate.work)
        # The access log goes where gunicorn would send it (a file), not to this terminal.
        sys.stdout = open(work / "app.log", "a")

        body = {"model": "bench-d0", "messages": gb.MESSAGES, "max_tokens": 32}
        if args.stream:
            body["stream"] = True
        raw = json.dumps(body).encode()
        results = {}

        if "view" in only or "provider" in only:
            from llmgate import create_app

            app = create_app()
            client = app.test_client()
            headers = {"Authorization": f"Bearer {gate.token}", "Content-Type": "application/json"}

            def view() -> None:
                response = client.post("/v1/chat/completions", data=raw, headers=headers)
                assert response.status_code == 200, response.data[:300]
                response.get_data()
                response.close()

            if "view" in only:
                results["view"] = rounds("view", view, args.n, args.rounds, args.concurrency)
            if "provider" in only:
                from llmgate.gateway.catalog import get_catalog

                with app.app_context():
                    catalog = get_catalog(app)
                    provider = catalog.provider(catalog.deployments("bench-d0")[0])
                upstream_body = {**body, "model": "fake-model"}

                def call() -> None:
                    result = provider.chat(upstream_body, stream=args.stream)
                    if args.stream:
                        for _ in result:
                            pass

                results["provider"] = rounds("provider", call, args.n, args.rounds, args.concurrency)

        if "floor" in only:
            os.environ["BENCH_FLOOR_UPSTREAMS"] = json.dumps({"bench-d0": direct.paths[0] + "/v1"})
            from bench import flask_floor

            floor_client = flask_floor.app.test_client()

            def floor() -> None:
                response = floor_client.post("/v1/chat/completions", data=raw,
                                             headers={"Content-Type": "application/json"})
                assert response.status_code == 200
                response.get_data()
                response.close()

            results["floor"] = rounds("floor", floor, args.n, args.rounds, args.concurrency)
        if "view" in results and "floor" in results:
            say(f"view − floor: {results['view'] - results['floor']:.0f} µs/req")
    finally:
        gb.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
