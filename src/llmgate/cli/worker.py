"""``llmgate worker``: RQ workers with the app context, plus the registered worker loops."""
from __future__ import annotations

import sys

import click
from flask.cli import ScriptInfo

from ..extensions import QUEUE_NAMES


@click.command("worker")
@click.option("--queues", "-q", default=",".join(QUEUE_NAMES), show_default=True,
              help="Comma-separated queues, in priority order.")
@click.option("--burst", is_flag=True, help="Process what is queued, then exit.")
@click.option("--count", "-n", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes to run (each also runs the worker loops).")
@click.option("--max-jobs", type=click.IntRange(min=1), help="Exit after this many jobs (per process).")
@click.option("--no-scheduler", is_flag=True, help="Do not run RQ's scheduler for delayed jobs in this process.")
def worker(queues: str, burst: bool, count: int, max_jobs: int | None, no_scheduler: bool) -> None:
    """Run background jobs (batches, usage draining) until SIGTERM."""
    from .. import worker as worker_module

    names = [name.strip() for name in queues.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("name at least one queue", param_hint="--queues")
    if count > 1:
        child_args = ["worker", "--queues", ",".join(names), "--count", "1"]
        child_args += ["--burst"] * burst + ["--no-scheduler"] * no_scheduler
        child_args += ["--max-jobs", str(max_jobs)] if max_jobs else []
        sys.exit(worker_module.supervise(count, child_args, burst=burst))
    app = click.get_current_context().ensure_object(ScriptInfo).load_app()
    worker_module.run(app, queues=names, burst=burst, with_scheduler=not no_scheduler, max_jobs=max_jobs)
