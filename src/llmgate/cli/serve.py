"""``llmgate serve`` (gunicorn with the shipped settings) and ``llmgate run`` (Flask's dev server on LLMGATE_BIND)."""
from __future__ import annotations

import copy
import os
import sys

import click
from flask.cli import ScriptInfo
from flask.cli import run_command as flask_run_command

DEFAULT_BIND = "127.0.0.1:8000"
WSGI_APP = "llmgate:create_app()"
GUNICORN_CONFIG = "python:llmgate.gunicorn_conf"


def split_bind(bind: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8000`` for IPv6) → (host, port)."""
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"expected host:port, got {bind!r}", param_hint="LLMGATE_BIND")
    return host.strip("[]"), int(port)


def _bind_from_env() -> str:
    return os.environ.get("LLMGATE_BIND") or DEFAULT_BIND


def _run_command() -> click.Command:
    """Flask's ``run``, with --host/--port defaulting to LLMGATE_BIND instead of 127.0.0.1:5000."""
    command = copy.copy(flask_run_command)
    command.params = [copy.copy(param) for param in flask_run_command.params]
    for param in command.params:
        if param.name == "host":
            param.default = lambda: split_bind(_bind_from_env())[0]
            param.help = "The interface to bind to (default: from LLMGATE_BIND, else 127.0.0.1)."
        elif param.name == "port":
            param.default = lambda: split_bind(_bind_from_env())[1]
            param.help = "The port to bind to (default: from LLMGATE_BIND, else 8000)."
    return command


run = _run_command()


def gunicorn_command(extra_args: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONFIG, *extra_args, WSGI_APP]


@click.command("serve", context_settings={"ignore_unknown_options": True})
@click.option("--bind", "-b", help="host:port or unix:/path to listen on [env LLMGATE_BIND; default 127.0.0.1:8000].")
@click.option("--workers", "-w", type=click.IntRange(min=1),
              help="Worker processes [env LLMGATE_WORKERS; default gevent: one per core (at least 2), at most 16].")
@click.option("--worker-class", "-k", type=click.Choice(["gevent", "gthread", "sync"]),
              help="gunicorn worker class [env LLMGATE_WORKER_CLASS; default gevent].")
@click.option("--dry-run", is_flag=True, help="Print the gunicorn command and settings, then exit.")
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def serve(bind: str | None, workers: int | None, worker_class: str | None, dry_run: bool,
          gunicorn_args: tuple[str, ...]) -> None:
    """Serve llmgate with gunicorn (production). Extra arguments after -- go to gunicorn."""
    from ..config import check_production_ready

    app = click.get_current_context().ensure_object(ScriptInfo).load_app()
    if app.config.get("LLMGATE_ENV") == "production":
        problems = check_production_ready(app.config)
        if problems:
            click.echo(f"Error: refusing to serve in production: {'; '.join(problems)}.", err=True)
            sys.exit(1)

    # gunicorn_conf reads these, so that plain `gunicorn -c python:llmgate.gunicorn_conf` behaves the same.
    for name, value in (("LLMGATE_BIND", bind), ("LLMGATE_WORKERS", workers), ("LLMGATE_WORKER_CLASS", worker_class)):
        if value is not None:
            os.environ[name] = str(value)
    os.environ.setdefault("LLMGATE_INSTANCE_PATH", app.instance_path)
    command = gunicorn_command(gunicorn_args)
    if dry_run:
        from .. import gunicorn_conf as conf

        click.echo(" ".join(command))
        workers_now = int(os.environ.get("LLMGATE_WORKERS") or conf.default_workers(
            os.environ.get("LLMGATE_WORKER_CLASS") or "gevent"))
        click.echo(f"bind={os.environ.get('LLMGATE_BIND') or DEFAULT_BIND} workers={workers_now} "
                   f"worker_class={os.environ.get('LLMGATE_WORKER_CLASS') or 'gevent'}")
        return
    sys.stdout.flush()
    sys.stderr.flush()
    # exec: gunicorn becomes this process, so signals from a supervisor reach its master directly.
    os.execv(sys.executable, command)
