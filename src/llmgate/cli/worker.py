"""``llmgate worker``: RQ workers with the app context, plus the registered worker loops.

The command is a supervisor: it starts ``--count`` worker processes (this same command, with
``LLMGATE_WORKER_SLOT`` and ``PROMETHEUS_MULTIPROC_DIR`` in their environment) and runs no jobs
itself. Started with ``LLMGATE_WORKER_SLOT`` set, it is one of those workers and runs jobs here.
"""
from __future__ import annotations

import os
import sys

import click
from flask.cli import ScriptInfo

from ..extensions import QUEUE_NAMES

SLOT_ENV = "LLMGATE_WORKER_SLOT"


def _parse_bind(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}", param_hint="--metrics-bind")
    return host.strip("[]"), int(port)


@click.command("worker")
@click.option("--queues", "-q", default=",".join(QUEUE_NAMES), show_default=True,
              help="Comma-separated queues, in priority order.")
@click.option("--burst", is_flag=True, help="Process what is queued, then exit.")
@click.option("--count", "-n", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes to run (each also runs the worker loops).")
@click.option("--max-jobs", type=click.IntRange(min=1), help="Exit after this many jobs (per process).")
@click.option("--no-scheduler", is_flag=True, help="Do not run RQ's scheduler for delayed jobs in this process.")
@click.option("--metrics-bind", metavar="HOST:PORT", envvar="LLMGATE_WORKER_METRICS_BIND",
              help="Also serve these workers' metrics on http://HOST:PORT/metrics (for workers on another "
                   "machine than the API) [env LLMGATE_WORKER_METRICS_BIND].")
def worker(queues: str, burst: bool, count: int, max_jobs: int | None, no_scheduler: bool,
           metrics_bind: str | None) -> None:
    """Run background jobs (batches, usage draining) until SIGTERM."""
    from .. import worker as worker_module
    from .. import worker_metrics

    names = [name.strip() for name in queues.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("name at least one queue", param_hint="--queues")
    app = click.get_current_context().ensure_object(ScriptInfo).load_app()
    if os.environ.get(SLOT_ENV) is not None:  # one of a supervisor's workers
        worker_module.run(app, queues=names, burst=burst, with_scheduler=not no_scheduler, max_jobs=max_jobs)
        return
    bind = _parse_bind(metrics_bind)
    child_args = ["worker", "--queues", ",".join(names)]
    child_args += ["--burst"] * burst + ["--no-scheduler"] * no_scheduler
    child_args += ["--max-jobs", str(max_jobs)] if max_jobs else []
    try:
        status = worker_module.supervise(
            count, child_args, burst=burst,
            metrics_root=worker_metrics.worker_metrics_root(app.instance_path, app.config.get("METRICS_DIR")),
            metrics_bind=bind, metrics_token=app.config.get("METRICS_TOKEN"))
    except worker_module.SupervisorError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(status)
