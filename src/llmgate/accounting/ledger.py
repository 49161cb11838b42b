"""Writing usage events to the database: raw rows and their rollups, in one transaction.

Idempotent by construction: rows are inserted with ``ON CONFLICT (event_id) DO NOTHING
RETURNING``, and only the rows actually returned are added to the rollups, so writing the same
events twice (a drainer killed between COMMIT and XACK) counts them once.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..extensions import db
from ..models.usage import NO_KEY, ROLLUP_SUMS, UsageDaily, UsageEvent, UsageHourly

_EVENT_FIELDS = ("event_id", "request_id", "ts", "key_id", "user_id", "model", "deployment_id", "provider",
                 "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "latency_ms", "ttft_ms",
                 "outcome", "error_kind", "attempt", "batch_id")


def event_row(event: dict[str, Any]) -> dict[str, Any]:
    """A stream event (as ``gate.settle`` wrote it) → a ``usage_events`` row."""
    cost = event.get("cost")
    return {
        "event_id": str(event["event_id"]),
        "request_id": str(event.get("request_id") or "")[:128],
        "ts": datetime.fromtimestamp(float(event["ts"]), timezone.utc),
        "key_id": event.get("key_id"),
        "user_id": int(event["user_id"]),
        "model": str(event["model"]),
        "deployment_id": str(event.get("deployment_id") or event["model"]),
        "provider": str(event.get("provider") or ""),
        "input_tokens": int(event.get("input_tokens") or 0),
        "output_tokens": int(event.get("output_tokens") or 0),
        "cached_tokens": int(event.get("cached_tokens") or 0),
        "cost_usd": None if cost is None else Decimal(str(cost)),
        "latency_ms": event.get("latency_ms"),
        "ttft_ms": event.get("ttft_ms"),
        "outcome": str(event.get("outcome") or "ok"),
        "error_kind": event.get("error_kind"),
        "attempt": int(event.get("attempt") or 0),
        "batch_id": None if event.get("batch_id") is None else str(event["batch_id"]),
    }


def _insert(table: sa.Table):
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {dialect!r}")


@dataclass(slots=True)
class _Sums:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    cost_unknown: int = 0

    def add(self, row) -> None:
        self.requests += 1
        self.errors += 1 if row.outcome == "error" else 0
        self.input_tokens += row.input_tokens
        self.output_tokens += row.output_tokens
        self.cached_tokens += row.cached_tokens
        if row.cost_usd is None:
            self.cost_unknown += 1
        else:
            self.cost_usd += Decimal(str(row.cost_usd))


def _upsert_rollup(model, bucket: str, sums: dict[tuple, _Sums]) -> None:
    if not sums:
        return
    table = model.__table__
    rows = [{bucket: k[0], "user_id": k[1], "key_id": k[2], "model": k[3], "provider": k[4],
             **{name: getattr(s, name) for name in ROLLUP_SUMS}} for k, s in sums.items()]
    stmt = _insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[bucket, "user_id", "key_id", "model", "provider"],
        set_={name: table.c[name] + stmt.excluded[name] for name in ROLLUP_SUMS},
    )
    db.session.execute(stmt, rows)


def add_to_rollups(rows: Iterable) -> None:
    """Add inserted ledger rows (anything with the ledger's attributes) to both rollups."""
    hourly: dict[tuple, _Sums] = defaultdict(_Sums)
    daily: dict[tuple, _Sums] = defaultdict(_Sums)
    for row in rows:
        ts = row.ts if row.ts.tzinfo else row.ts.replace(tzinfo=timezone.utc)
        ts = ts.astimezone(timezone.utc)
        rest = (row.user_id, NO_KEY if row.key_id is None else row.key_id, row.model, row.provider)
        hourly[(ts.replace(minute=0, second=0, microsecond=0), *rest)].add(row)
        daily[(date(ts.year, ts.month, ts.day), *rest)].add(row)
    # Sorted keys: concurrent drainers take row locks in the same order and cannot deadlock.
    _upsert_rollup(UsageHourly, "hour", dict(sorted(hourly.items())))
    _upsert_rollup(UsageDaily, "day", dict(sorted(daily.items())))


def write_events(events: list[dict[str, Any]]) -> int:
    """Insert events and roll them up in one transaction; returns how many were new. Commits."""
    if not events:
        return 0
    table = UsageEvent.__table__
    rows = {}
    for event in events:  # one batch may carry the same event twice (a reclaimed entry)
        row = event_row(event)
        rows[row["event_id"]] = row
    stmt = _insert(table).on_conflict_do_nothing(index_elements=["event_id"]).returning(
        table.c.ts, table.c.user_id, table.c.key_id, table.c.model, table.c.provider, table.c.input_tokens,
        table.c.output_tokens, table.c.cached_tokens, table.c.cost_usd, table.c.outcome)
    try:
        inserted = db.session.execute(stmt, list(rows.values())).all()
        add_to_rollups(inserted)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return len(inserted)


def prune(*, older_than: timedelta, now: datetime | None = None, chunk: int = 50_000) -> int:
    """Delete raw ledger rows older than ``older_than``; rollups keep their totals. Returns rows deleted."""
    cutoff = (now or datetime.now(timezone.utc)) - older_than
    table = UsageEvent.__table__
    deleted = 0
    while True:  # in chunks, so a first prune of a big ledger holds no giant transaction
        ids = sa.select(table.c.id).where(table.c.ts < cutoff).order_by(table.c.id).limit(chunk).scalar_subquery()
        count = db.session.execute(table.delete().where(table.c.id.in_(ids))).rowcount
        db.session.commit()
        deleted += count
        if count < chunk:
            return deleted
