"""Writing usage events to the database: raw rows and their rollups, in one transaction.

Idempotent by construction: rows are inserted with ``ON CONFLICT (event_id) DO NOTHING
RETURNING``, and only the rows actually returned are added to the rollups, so writing the same
events twice (a drainer killed between COMMIT and XACK) counts them once.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..extensions import db
from ..models.usage import NO_KEY, ROLLUP_KEYS, ROLLUP_SUMS, UsageDaily, UsageEvent, UsageHourly

_EVENT_FIELDS = ("event_id", "request_id", "ts", "key_id", "user_id", "model", "deployment_id", "provider",
                 "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "latency_ms", "ttft_ms",
                 "outcome", "error_kind", "attempt", "batch_id")


_COST_STEP = Decimal("1e-8")  # usage_events.cost_usd is NUMERIC(20, 8)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_HOUR = timedelta(hours=1)


def _cost(cost: Any) -> Decimal | None:
    # Rounded as the column stores it (PostgreSQL rounds half away from zero), so rollups sum
    # exactly the values the ledger holds.
    return None if cost is None else Decimal(str(cost)).quantize(_COST_STEP, ROUND_HALF_UP)


def event_row(event: dict[str, Any]) -> dict[str, Any]:
    """A stream event (as ``gate.settle`` wrote it) → a ``usage_events`` row."""
    get = event.get
    model = str(event["model"])
    batch_id = get("batch_id")
    return {
        "event_id": str(event["event_id"]),
        "request_id": str(get("request_id") or "")[:128],
        "ts": datetime.fromtimestamp(float(event["ts"]), _UTC),
        "key_id": get("key_id"),
        "user_id": int(event["user_id"]),
        "model": model,
        "deployment_id": str(get("deployment_id") or model),
        "provider": str(get("provider") or ""),
        "input_tokens": int(get("input_tokens") or 0),
        "output_tokens": int(get("output_tokens") or 0),
        "cached_tokens": int(get("cached_tokens") or 0),
        "cost_usd": _cost(get("cost")),
        "latency_ms": get("latency_ms"),
        "ttft_ms": get("ttft_ms"),
        "outcome": str(get("outcome") or "ok"),
        "error_kind": get("error_kind"),
        "attempt": int(get("attempt") or 0),
        "batch_id": None if batch_id is None else str(batch_id),
    }


def _insert(table: sa.Table):
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {dialect!r}")


_ROLLUP_INPUT = ("ts", "user_id", "key_id", "model", "provider", "outcome", "input_tokens", "output_tokens",
                 "cached_tokens", "cost_usd")
_SUM_COUNT = len(ROLLUP_SUMS)  # requests, errors, input, output, cached, cost_usd, cost_unknown


def _sum_rows(rows: Iterable) -> tuple[dict[tuple, list], dict[tuple, list]]:
    """Rollup deltas keyed (bucket, user_id, key_id, model, provider), for the hourly and daily
    tables. Hour buckets are summed first (keyed by the hour number since the epoch, no datetime
    work per row), day buckets from them."""
    by_hour: dict[tuple, list] = {}
    for row in rows:
        if type(row) is not dict:
            row = {name: getattr(row, name) for name in _ROLLUP_INPUT}
        ts = row["ts"]
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=_UTC)
        key_id = row["key_id"]
        key = ((ts - _EPOCH) // _HOUR, row["user_id"], NO_KEY if key_id is None else key_id, row["model"],
               row["provider"])
        sums = by_hour.get(key)
        if sums is None:
            sums = by_hour[key] = [0, 0, 0, 0, 0, Decimal(0), 0]
        sums[0] += 1
        if row["outcome"] == "error":
            sums[1] += 1
        sums[2] += row["input_tokens"]
        sums[3] += row["output_tokens"]
        sums[4] += row["cached_tokens"]
        cost = row["cost_usd"]
        if cost is None:
            sums[6] += 1
        else:
            sums[5] += cost if type(cost) is Decimal else Decimal(str(cost))
    hourly: dict[tuple, list] = {}
    daily: dict[tuple, list] = {}
    for (hour, *rest), sums in by_hour.items():
        hourly[(_EPOCH + hour * _HOUR, *rest)] = sums
        day_key = (date.fromordinal(_EPOCH_ORDINAL + hour // 24), *rest)
        day = daily.get(day_key)
        if day is None:
            daily[day_key] = list(sums)
        else:
            for i in range(_SUM_COUNT):
                day[i] += sums[i]
    return hourly, daily


def _upsert_rollup(model, bucket: str, sums: dict[tuple, list]) -> None:
    if not sums:
        return
    table = model.__table__
    # Sorted keys: concurrent drainers take row locks in the same order and cannot deadlock.
    keys = sorted(sums)
    if db.session.get_bind().dialect.name == "postgresql":
        columns = (bucket, *ROLLUP_KEYS, *ROLLUP_SUMS)
        values = list(zip(*(k + tuple(sums[k]) for k in keys)))
        sql = (f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest("
               + ", ".join(f"%({c})s::{t}[]" for c, t in zip(columns, _ROLLUP_PG_TYPES[bucket]))
               + f") ON CONFLICT ({', '.join(columns[:5])}) DO UPDATE SET "
               + ", ".join(f"{c} = {table.name}.{c} + excluded.{c}" for c in ROLLUP_SUMS))
        db.session.connection().exec_driver_sql(sql, dict(zip(columns, map(list, values))))
        return
    rows = [{bucket: k[0], "user_id": k[1], "key_id": k[2], "model": k[3], "provider": k[4],
             **dict(zip(ROLLUP_SUMS, sums[k]))} for k in keys]
    stmt = _insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[bucket, *ROLLUP_KEYS],
        set_={name: table.c[name] + stmt.excluded[name] for name in ROLLUP_SUMS},
    )
    db.session.execute(stmt, rows)


_ROLLUP_SUM_PG_TYPES = ("int8", "int8", "int8", "int8", "int8", "numeric", "int8")
_ROLLUP_PG_TYPES = {"hour": ("timestamptz", "int4", "int4", "text", "text", *_ROLLUP_SUM_PG_TYPES),
                    "day": ("date", "int4", "int4", "text", "text", *_ROLLUP_SUM_PG_TYPES)}


def add_to_rollups(rows: Iterable) -> None:
    """Add inserted ledger rows (``event_row`` dicts, or anything with the ledger's attributes)
    to both rollups."""
    hourly, daily = _sum_rows(rows)
    _upsert_rollup(UsageHourly, "hour", hourly)
    _upsert_rollup(UsageDaily, "day", daily)


# PostgreSQL: one INSERT … SELECT FROM unnest(one array per column). The statement text is the
# same for every batch (psycopg parses and caches it once; a multi-row VALUES list is a new,
# long statement each batch, and parsing it client-side was most of the drain's CPU).
_EVENT_PG_TYPES = {"event_id": "text", "request_id": "text", "ts": "timestamptz", "key_id": "int4",
                   "user_id": "int4", "model": "text", "deployment_id": "text", "provider": "text",
                   "input_tokens": "int4", "output_tokens": "int4", "cached_tokens": "int4",
                   "cost_usd": "numeric", "latency_ms": "float8", "ttft_ms": "float8", "outcome": "text",
                   "error_kind": "text", "attempt": "int2", "batch_id": "text"}
_EVENT_PG_SQL = (f"INSERT INTO usage_events ({', '.join(_EVENT_FIELDS)}) SELECT * FROM unnest("
                 + ", ".join(f"%({c})s::{_EVENT_PG_TYPES[c]}[]" for c in _EVENT_FIELDS)
                 + ") ON CONFLICT (event_id) DO NOTHING RETURNING event_id")


def _insert_new(rows: dict[str, dict[str, Any]]) -> list[str]:
    """Insert rows, skipping event ids already in the ledger; returns the ids actually inserted."""
    if db.session.get_bind().dialect.name == "postgresql":
        values = list(rows.values())
        params = {c: [row[c] for row in values] for c in _EVENT_FIELDS}
        return [r[0] for r in db.session.connection().exec_driver_sql(_EVENT_PG_SQL, params)]
    table = UsageEvent.__table__
    stmt = _insert(table).on_conflict_do_nothing(index_elements=["event_id"]).returning(table.c.event_id)
    return list(db.session.execute(stmt, list(rows.values())).scalars())


def write_events(events: list[dict[str, Any]]) -> int:
    """Insert events and roll them up in one transaction; returns how many were new. Commits."""
    if not events:
        return 0
    rows = {}
    for event in events:  # one batch may carry the same event twice (a reclaimed entry)
        row = event_row(event)
        rows[row["event_id"]] = row
    try:
        inserted = _insert_new(rows)
        # Only the rows this INSERT wrote are rolled up (by the values it wrote): a replay adds nothing.
        add_to_rollups(rows[event_id] for event_id in inserted)
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
