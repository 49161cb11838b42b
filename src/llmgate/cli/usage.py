"""``llmgate usage ...``: reports, draining events to the database now, pruning old raw rows."""
from __future__ import annotations

import sys
from datetime import datetime, timezone

import click
from flask.cli import AppGroup

from ..accounting import drain, ledger, reports
from .users import domain_errors

usage = AppGroup("usage", help="Usage reports and the usage ledger.")


@usage.command("report")
@click.option("--since", default="7d", show_default=True, help="How far back: 90m, 12h, 7d, 2w.")
@click.option("--start", default=None, help="ISO date or date-time (overrides --since).")
@click.option("--end", default=None, help="ISO date (included) or date-time; default now.")
@click.option("--by", "group_by", default="day", show_default=True,
              help=f"Comma-separated groups: {', '.join(reports.GROUPS)} (empty: totals only).")
@click.option("--tz", default="UTC", show_default=True, help="IANA time zone for days and hours.")
@click.option("--format", "fmt", type=click.Choice(reports.FORMATS), default="csv", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write here instead of stdout (required for parquet).")
@click.option("--user-id", type=int, default=None, help="Only this user.")
@click.option("--key-id", type=int, default=None, help="Only this key.")
@click.option("--model", default=None, help="Only this model.")
def report(since, start, end, group_by, tz, fmt, output, user_id, key_id, model) -> None:
    """Print a usage report (CSV by default; the last line is the total)."""
    import json

    with domain_errors():
        if start is None:
            start = (datetime.now(timezone.utc) - reports.parse_since(since)).isoformat()
        query = reports.parse_query(start=start, end=end, tz=tz, group_by=group_by, user_id=user_id,
                                    key_id=key_id, model=model)
        result = reports.build_report(query)
    if fmt == "parquet":
        if not output:
            raise click.UsageError("--format parquet needs --output FILE")
        with open(output, "wb") as handle:
            handle.write(reports.to_parquet(result))
        return
    text = reports.to_csv(result) if fmt == "csv" else json.dumps(reports.to_json(result), indent=2) + "\n"
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)


@usage.command("flush")
def flush() -> None:
    """Write every usage event waiting in Redis to the database now."""
    written = drain.flush()
    click.echo(f"Wrote {written} usage events; {drain.pending()} left in Redis.")


@usage.command("prune")
@click.option("--older-than", required=True, help="Age of raw rows to delete: 90d, 12w, 48h.")
def prune(older_than: str) -> None:
    """Delete raw ledger rows older than this; hourly and daily totals are kept."""
    with domain_errors():
        age = reports.parse_since(older_than)
    deleted = ledger.prune(older_than=age)
    click.echo(f"Deleted {deleted} usage rows older than {older_than}.")
