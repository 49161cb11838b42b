"""``llmgate serve`` (gunicorn + gevent, multiprocess metrics, JSON logs) and ``llmgate run``."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from llmgate import gunicorn_conf
from llmgate.cli import cli
from llmgate.config import _GENERATED_MARKER

from .conftest import LLMGATE, free_port, stop, wait_for_http


def test_serve_refuses_production_with_generated_secrets(app_factory):
    app = app_factory(LLMGATE_ENV="production", SECRET_KEY=_GENERATED_MARKER + "x" * 40)
    result = app.test_cli_runner().invoke(cli, ["serve", "--dry-run"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "LLMGATE_SECRET_KEY must be set in production" in lines[0]


def test_serve_dry_run_shows_gunicorn_with_the_shipped_config(runner, monkeypatch):
    for name in ("LLMGATE_BIND", "LLMGATE_WORKERS", "LLMGATE_WORKER_CLASS"):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(cli, ["serve", "--dry-run", "--bind", "0.0.0.0:9000", "--workers", "3"])
    assert result.exit_code == 0, result.output
    assert "-m gunicorn -c python:llmgate.gunicorn_conf llmgate:create_app()" in result.output
    assert "bind=0.0.0.0:9000 workers=3 worker_class=gevent" in result.output


def test_gunicorn_defaults():
    assert gunicorn_conf.worker_class == "gevent"
    assert gunicorn_conf.preload_app is False and gunicorn_conf.control_socket_disable is True
    assert gunicorn_conf.accesslog is None and gunicorn_conf.graceful_timeout == 30
    assert gunicorn_conf.default_workers("gevent", cpus=2) == 2
    assert gunicorn_conf.default_workers("gevent", cpus=1) == 2
    assert gunicorn_conf.default_workers("sync", cpus=2) == 5
    assert gunicorn_conf.default_workers("gevent", cpus=64) == gunicorn_conf.MAX_DEFAULT_WORKERS
    assert gunicorn_conf.default_workers("gthread", cpus=4) == 5


def _samples(base: str):
    text = requests.get(base + "/metrics", timeout=5).text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _live_pids(base: str) -> set[str]:
    return {s.labels["pid"] for s in _samples(base)
            if s.name == "llmgate_process_start_time_seconds" and s.labels.get("kind") == "api"}


@pytest.mark.once
def test_serve_two_gevent_workers_metrics_logs_and_database(process_env, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([*LLMGATE, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
                                  env=process_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_http(base + "/healthz", server)
        deadline = time.monotonic() + 20
        while len(_live_pids(base)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = _live_pids(base)
        assert len(pids) == 2

        # Many fresh connections at once so that both workers answer some.
        n = 60
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: requests.get(base + "/readyz", timeout=10).status_code, range(n)))
        assert statuses == [200] * n  # each /readyz ran a database query in a gevent worker (psycopg 3)
        samples = _samples(base)
        counted = sum(s.value for s in samples if s.name == "llmgate_http_requests_total"
                      and s.labels["route"] == "/readyz")
        assert counted == n
        in_flight = [s.value for s in samples if s.name == "llmgate_http_requests_in_flight"]
        assert in_flight == [1.0]  # only the scrape itself

        # A killed worker's live series leaves /metrics; its counts stay in the totals.
        victim = sorted(pids)[0]
        os.kill(int(victim), signal.SIGKILL)
        deadline = time.monotonic() + 20
        while victim in _live_pids(base) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert victim not in _live_pids(base)
        # Let the replacement finish booting: gunicorn cannot pass SIGTERM to a worker that has not
        # installed its handlers yet, and would then wait graceful_timeout before killing it.
        deadline = time.monotonic() + 30
        while len(_live_pids(base)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sum(s.value for s in _samples(base) if s.name == "llmgate_http_requests_total"
                   and s.labels["route"] == "/readyz") == n
    finally:
        assert stop(server, timeout=45) == 0

    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert any(r["logger_name"] == "gunicorn.error" and "Booting worker" in r["message"] for r in records)
    # every worker, the replacement too, warmed up before serving (providers, scripts, gc.freeze)
    warmed = [r for r in records if r["message"] == "worker warmed up"]
    assert len({r["pid"] for r in warmed}) == 3 and all(r["providers_failed"] == [] for r in warmed)
    access = [r for r in records if r["logger_name"] == "llmgate.access" and r["path"] == "/readyz"]
    assert len(access) == n and len({r["request_id"] for r in access}) == n
    assert not [line for line in log_path.read_text().splitlines() if line and not line.startswith("{")]


GEVENT_DB_PROBE = """
from gevent import monkey; monkey.patch_all()
import sys, time, gevent
import sqlalchemy as sa
from llmgate import create_app
from llmgate.extensions import db
app = create_app()
def sleep_in_db():
    with app.app_context():
        db.session.execute(sa.text(sys.argv[1]))
        db.session.remove()
started = time.monotonic()
gevent.joinall([gevent.spawn(sleep_in_db) for _ in range(4)], raise_error=True)
print(round(time.monotonic() - started, 2))
"""


@pytest.mark.once
def test_psycopg_queries_yield_to_other_greenlets_under_gevent(process_env, migrated):
    if not migrated["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    out = subprocess.run([*LLMGATE[:1], "-c", GEVENT_DB_PROBE, "SELECT pg_sleep(0.5)"], env=process_env,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert float(out.strip().splitlines()[-1]) < 1.2  # four 0.5 s queries overlapped, not 2 s in a row


@pytest.mark.once
def test_run_defaults_to_llmgate_bind(process_env):
    port = free_port()
    env = {**process_env, "LLMGATE_BIND": f"127.0.0.1:{port}"}
    server = subprocess.Popen([*LLMGATE, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", server)
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json() == {"status": "ok"}
    finally:
        stop(server)


GEVENT_HASHING_PROBE = """
from gevent import monkey; monkey.patch_all()
import time, gevent
from llmgate import create_app
from llmgate.auth import passwords
app = create_app()
app.config["TESTING"] = False  # the real argon2 cost: tens of ms per hash
ticks = []
def ticker():
    while True:
        ticks.append(time.monotonic())
        gevent.sleep(0.002)
def hash_twice():
    with app.app_context():
        stored = passwords.hash_password("pw-Secret-123")
        assert passwords.verify_password(stored, "pw-Secret-123")
        assert not passwords.verify_password(stored, "wrong-password")
tick = gevent.spawn(ticker)
gevent.sleep(0.01)
started = time.monotonic()
gevent.spawn(hash_twice).get()
took = time.monotonic() - started
tick.kill()
during = [t for t in ticks if t >= started]
gaps = [b - a for a, b in zip(during, during[1:])]
print(round(took, 3), len(during), round(max(gaps, default=took), 3))
"""


@pytest.mark.once
def test_password_hashing_does_not_freeze_a_gevent_worker(process_env):
    # Three argon2 runs take tens of ms each; meanwhile another greenlet must keep ticking.
    result = subprocess.run([*LLMGATE[:1], "-c", GEVENT_HASHING_PROBE], env=process_env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    took, ticks, worst_gap = result.stdout.strip().splitlines()[-1].split()
    assert float(took) > 0.05, result.stdout  # real hashing happened
    assert int(ticks) >= 10 and float(worst_gap) < 0.05, result.stdout
