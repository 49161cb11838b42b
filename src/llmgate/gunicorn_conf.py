"""gunicorn settings for ``llmgate serve`` (``gunicorn -c python:llmgate.gunicorn_conf 'llmgate:create_app()'``).

Shipped inside the package so that serving works from any directory once llmgate is
installed. Every value can be set through the environment (``LLMGATE_*``); ``llmgate serve``
turns its options into those variables. Why each default is what it is: docs/operations.md.

Importing this module must stay cheap and free of side effects: gunicorn's master imports it
before forking gevent workers, and gunicorn imports it a second time to find the logger class.
Everything that touches the disk happens in the hooks below.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from gunicorn.glogging import Logger

MAX_DEFAULT_WORKERS = 16


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def default_workers(worker_class: str, cpus: int | None = None) -> int:
    """gevent: one worker per core (at least 2, so a restarting worker never leaves none): each
    holds hundreds of connections, and more processes than cores only add context switches —
    measured on 2 cores, 2 workers spent 1,428 µs of CPU per saturated request where 5 spent
    1,812 (docs/benchmarks.md, "Worker class and count"). Password hashing runs on gevent's
    thread pool, so it does not stall a worker's loop. sync: 2 x cores + 1 (one request per
    process); gthread: cores + 1, each with several threads."""
    cpus = cpus or os.cpu_count() or 1
    wanted = {"gevent": max(2, cpus), "gthread": cpus + 1}.get(worker_class, 2 * cpus + 1)
    return max(1, min(wanted, MAX_DEFAULT_WORKERS))


def multiproc_dir(environ=os.environ) -> Path:
    """Where the workers' prometheus_client files go: LLMGATE_METRICS_DIR, else under the instance folder."""
    if environ.get("LLMGATE_METRICS_DIR"):
        return Path(environ["LLMGATE_METRICS_DIR"]).resolve()
    instance = environ.get("LLMGATE_INSTANCE_PATH") or "instance"  # the same default as create_app
    return (Path(instance) / "prometheus").resolve()


# --- settings -------------------------------------------------------------------------------------

bind = [os.environ.get("LLMGATE_BIND") or "127.0.0.1:8000"]
# gevent: slow upstreams hold a cheap greenlet each, not a thread (docs/operations.md has the numbers).
worker_class = os.environ.get("LLMGATE_WORKER_CLASS") or "gevent"
workers = _int_env("LLMGATE_WORKERS", default_workers(worker_class))
# gevent: concurrent connections per worker (each streaming request holds one).
worker_connections = _int_env("LLMGATE_WORKER_CONNECTIONS", 1000)
# gthread only: threads per worker.
threads = _int_env("LLMGATE_THREADS", 8 if worker_class == "gthread" else 1)
# With gevent and gthread this is a heartbeat, not a request deadline: long streams are fine,
# a worker whose loop is blocked this long is killed and replaced.
timeout = _int_env("LLMGATE_WORKER_TIMEOUT", 60)
# On SIGTERM, requests in flight (streams included) get this long to finish.
graceful_timeout = _int_env("LLMGATE_GRACEFUL_TIMEOUT", 30)
# Seconds an idle keep-alive connection stays open; raise above your load balancer's idle timeout.
keepalive = _int_env("LLMGATE_KEEPALIVE", 5)
# Off by default: recycling workers is a leak workaround, and it drops each worker's caches.
max_requests = _int_env("LLMGATE_MAX_REQUESTS", 0)
max_requests_jitter = _int_env("LLMGATE_MAX_REQUESTS_JITTER", max_requests // 10)
# Never preload: gevent must monkey-patch a worker before the app (ssl, sockets, psycopg,
# redis) is imported, and a preloaded app would share its connection pools across forks.
preload_app = False
# gunicorn 27 otherwise opens a control socket under ~/.gunicorn, which may be read-only.
control_socket_disable = True
# Heartbeat files on a RAM disk when there is one (a slow /tmp can stall workers).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
# Our access line (logger llmgate.access) replaces gunicorn's; its error log goes through our handlers.
accesslog = None
logger_class = "llmgate.gunicorn_conf.JsonLogger"
loglevel = (os.environ.get("LLMGATE_LOG_LEVEL") or "info").lower()
proc_name = "llmgate"
forwarded_allow_ips = os.environ.get("LLMGATE_FORWARDED_ALLOW_IPS") or "127.0.0.1,::1"


class JsonLogger(Logger):
    """gunicorn's error log through llmgate's handlers (JSON or text, stdout and the shared file)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        from .logging import configure_from_env

        configure_from_env()
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
        self.error_log.propagate = True
        self.access_log.propagate = False
        self._access_log_enabled = False

    def access(self, resp, req, environ, request_time) -> None:
        return None  # llmgate.observability writes one access line per request


# --- hooks ----------------------------------------------------------------------------------------

def on_starting(server) -> None:
    """In the master, before any worker exists: a fresh multiprocess metrics folder."""
    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or multiproc_dir())
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    # Workers inherit the environment; prometheus_client reads it when it is first imported.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def when_ready(server) -> None:
    server.log.info("llmgate serving", extra={
        "bind": [str(listener) for listener in server.LISTENERS], "workers": server.cfg.workers,
        "worker_class": server.cfg.worker_class_str})


def post_worker_init(worker) -> None:
    # Runs after the worker patched itself (gevent) and loaded the app.
    import time

    from .metrics import PROCESS_START

    PROCESS_START.labels("api").set(time.time())
    warm_up(worker.wsgi)


def warm_up(app) -> None:
    """Do in the new worker what its first request would otherwise pay for (~0.5 s: importing
    the provider SDKs, preparing their requests, loading the Lua scripts, configuring the ORM),
    so a deploy or a restarted worker does not stall the first callers it gets; then tune the
    garbage collector for a long-lived process."""
    import gc
    import time

    from sqlalchemy.orm import configure_mappers

    from .accounting import gate
    from .gateway.catalog import get_catalog

    log = logging.getLogger("llmgate.serve")
    started = time.perf_counter()
    with app.app_context():
        configure_mappers()  # the ORM's first query otherwise does it (tens of ms)
        failed = get_catalog(app).build_providers()
        try:
            gate.load_scripts(app)
        except Exception:  # Redis down: requests will say so (503); the worker still starts
            log.warning("could not load the accounting scripts into Redis", exc_info=True)
    # Everything loaded so far (the SDKs' pydantic models, routes, the catalog) lives as long as the
    # worker: out of the collector's sight, a full collection no longer walks it (~0.1 s pauses).
    # The young-generation threshold stays at Python's 700: at 20,000 saturated cells gained ~2 %
    # req/s, but each young collection then walks ~30x more objects, and the c=1 p99 grew by
    # ~0.5 ms (bench/gateway_bench.py, three alternating runs each; docs/benchmarks.md).
    gc.freeze()
    log.info("worker warmed up", extra={"warm_up_ms": round((time.perf_counter() - started) * 1000, 1),
                                        "providers_failed": failed})


def child_exit(server, worker) -> None:
    """A dead worker's live gauges must leave /metrics; its counters stay in the totals."""
    from prometheus_client import multiprocess

    try:
        multiprocess.mark_process_dead(worker.pid)
    except Exception:  # a missing file must never take the master down
        logging.getLogger("gunicorn.error").warning("could not clear metrics of worker %s", worker.pid,
                                                    exc_info=True)
