"""``llmgate batch ...``: submit a tabular batch, follow it, act on it, download its results.

Commands act as ``--user EMAIL`` (default: the first admin). Batches are run by
``llmgate worker`` processes; ``submit --wait`` only watches.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import select

from ..auth import users as users_service
from ..auth.principal import Principal
from ..auth.principal_cache import principal_for_user_row
from ..batches import files, service, tabular
from ..errors import NotFound
from ..extensions import db
from ..models.user import User
from .users import domain_errors

batch = AppGroup("batch", help="Tabular and OpenAI-style batches.")
user_option = click.option("--user", "email", default=None, help="Act as this user (default: the first admin).")


def _principal(email: str | None) -> Principal:
    if email:
        return principal_for_user_row(users_service.require_user_by_email(email=email))
    admin = db.session.execute(select(User).where(User.role == "admin", User.active.is_(True)).order_by(User.id)
                               .limit(1)).scalar_one_or_none()
    if admin is None:
        raise NotFound("No admin user exists: pass --user EMAIL (or run `llmgate setup`).")
    return principal_for_user_row(admin)


def _line(b) -> str:
    p = service.progress(b)
    rate = f"{p['rows_per_second']:.1f} rows/s" if p["rows_per_second"] else "-"
    eta = f"ETA {p['eta_seconds']}s" if p["eta_seconds"] is not None else ""
    reason = f" ({b.pause_reason})" if b.status == "paused" and b.pause_reason else ""
    return (f"{b.id}  {b.kind:<8} {b.status}{reason}  {p['completed']}/{p['total']} done, {p['failed']} failed, "
            f"{rate} {eta}  ${p['cost_usd']:.4f}").rstrip()


@batch.command("submit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", "-m", required=True)
@click.option("--template", "-t", required=True, help="Jinja2 template over the columns, or @file to read it.")
@click.option("--system", "-s", default=None, help="System prompt (also a template), or @file.")
@click.option("--schema", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="JSON Schema file: answers become one column per property.")
@click.option("--param", "params", multiple=True, help="name=value, e.g. temperature=0 (repeatable).")
@click.option("--format", "fmt", default=None, help="Input format when the file name does not say.")
@click.option("--dry-run", is_flag=True, help="Check and estimate only; submit nothing.")
@click.option("--wait", is_flag=True, help="Follow progress until the batch ends.")
@user_option
def submit(file: Path, model: str, template: str, system: str | None, schema: Path | None, params: tuple[str, ...],
           fmt: str | None, dry_run: bool, wait: bool, email: str | None) -> None:
    """Submit FILE (CSV, TSV, Parquet, JSONL or Excel) as a tabular batch."""
    with domain_errors():
        spec = tabular.Spec(model=model, template=_text(template), system=_text(system) if system else None,
                            params=_params(params), schema=json.loads(schema.read_text()) if schema else None,
                            format=fmt)
        principal = _principal(email)
        with open(file, "rb") as stream:
            if dry_run:
                click.echo(json.dumps(tabular.dry_run(principal=principal, spec=spec, stream=stream,
                                                      filename=file.name), indent=2))
                return
            created = tabular.submit(principal=principal, spec=spec, stream=stream, filename=file.name)
    click.echo(created.id)
    if wait:
        _follow(created.id, principal)


def _text(value: str) -> str:
    return Path(value[1:]).read_text() if value.startswith("@") else value


def _params(pairs: tuple[str, ...]) -> dict:
    out = {}
    for pair in pairs:
        name, _, raw = pair.partition("=")
        try:
            out[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[name.strip()] = raw
    return out


def _follow(batch_id: str, principal: Principal) -> None:
    current = service.get(principal=principal, batch_id=batch_id)
    with click.progressbar(length=max(current.total, 1), label=batch_id, show_eta=True, show_percent=True) as bar:
        seen = 0
        while True:
            db.session.remove()
            current = service.get(principal=principal, batch_id=batch_id)
            if current.total and bar.length != current.total:
                bar.length = current.total
            finished = current.completed + current.failed
            bar.update(max(0, finished - seen))
            seen = max(seen, finished)
            if current.is_final:
                break
            time.sleep(1)
    click.echo(_line(current))
    if current.status != "completed":
        raise SystemExit(1)


@batch.command("status")
@click.argument("batch_id")
@user_option
def status(batch_id: str, email: str | None) -> None:
    """Progress of one batch: done, failed, rows/s, ETA, cost."""
    with domain_errors():
        click.echo(_line(service.get(principal=_principal(email), batch_id=batch_id)))


@batch.command("list")
@click.option("--limit", default=20, show_default=True)
@user_option
def list_batches(limit: int, email: str | None) -> None:
    """Batches, newest first (an admin sees everyone's)."""
    with domain_errors():
        principal = _principal(email)
        page, _ = service.list_batches(principal=principal, limit=limit, everyone=principal.is_admin)
        for row in page:
            click.echo(_line(row))


def _action(name: str):
    @batch.command(name)
    @click.argument("batch_id")
    @user_option
    def command(batch_id: str, email: str | None) -> None:
        with domain_errors():
            click.echo(_line(getattr(service, name)(principal=_principal(email), batch_id=batch_id)))

    command.__doc__ = {"cancel": "Cancel: stops within seconds; finished rows are kept.",
                       "pause": "Pause: rows in flight finish, no new ones start.",
                       "resume": "Resume a paused batch."}[name]
    return command


cancel, pause, resume = (_action(n) for n in ("cancel", "pause", "resume"))


@batch.command("download")
@click.argument("batch_id")
@click.option("--format", "fmt", default="csv", show_default=True, help="csv, tsv, parquet, jsonl or xlsx.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
@user_option
def download(batch_id: str, fmt: str, output: Path | None, email: str | None) -> None:
    """Save the results (tabular: the table with answers; OpenAI-style: the output JSONL)."""
    with domain_errors():
        principal = _principal(email)
        found = service.get(principal=principal, batch_id=batch_id)
        if found.kind == "tabular":
            file_id = tabular.result_file(batch=found, fmt=fmt)
        elif found.output_file_id:
            file_id = found.output_file_id
        else:
            raise NotFound("This batch has no output file (yet).")
        owner = Principal(user_id=found.user_id, email="", role="member")
        row, path = files.content_path(principal=owner, file_id=file_id)
        target = output or Path(row.filename)
        shutil.copyfile(path, target)
    click.echo(str(target))
