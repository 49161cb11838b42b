"""Usage reports: totals over the rollups, grouped by time and dimensions, in a time zone.

Time buckets come from the hourly rollup (UTC hours), converted to the report's zone, so days
follow that zone's calendar — a DST day has 23 or 25 hours — and are exact for any zone whose
offset is a whole number of hours. For :30/:45 offsets (India, Nepal, parts of Australia) an
hour bucket is assigned to the local day its start falls in, so day boundaries are off by that
part of an hour. The daily rollup answers UTC reports that need no hours. pandas is used here,
at the boundary, to bucket and to serialise CSV and Parquet.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

# pandas (with numpy and pyarrow, ~90 MB) is imported inside the functions that use it, so
# that API workers which never touch a table don't carry it.
if TYPE_CHECKING:
    import pandas as pd

from ..errors import ValidationError
from ..extensions import db
from ..models.api_key import ApiKey
from ..models.base import is_row_id
from ..models.usage import NO_KEY, ROLLUP_SUMS, UsageDaily, UsageHourly
from ..models.user import User

GROUPS = ("day", "hour", "model", "key", "user", "provider")
FORMATS = ("json", "csv", "parquet")
METRICS = ROLLUP_SUMS
_DIMENSION_COLUMNS = {"model": "model", "key": "key_id", "user": "user_id", "provider": "provider"}
MAX_RANGE = timedelta(days=3 * 366)


@dataclass(frozen=True, slots=True)
class ReportQuery:
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    tz: ZoneInfo
    group_by: tuple[str, ...] = ()
    user_id: int | None = None
    key_id: int | None = None
    model: str | None = None


@dataclass(slots=True)
class Report:
    query: ReportQuery
    rows: pd.DataFrame
    totals: dict[str, Any] = field(default_factory=dict)


# --- parsing ------------------------------------------------------------------------------------

def _parse_moment(value: str, tz: ZoneInfo, *, name: str, is_end: bool) -> datetime:
    """ISO date (a whole local day: an end date is included) or datetime (naive = local)."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            local = datetime.combine(day + timedelta(days=1) if is_end else day, time(), tz)
            return local.astimezone(timezone.utc)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        return moment.astimezone(timezone.utc)
    except ValueError:
        raise ValidationError(f"Invalid {name}.", details={name: "must be an ISO 8601 date or date-time"}) from None
    except OverflowError:  # the day after 9999-12-31, or a shift to UTC past year 1 or 9999
        raise ValidationError(f"Invalid {name}.", details={name: "is out of range"}) from None


def parse_group_by(value: str | list[str] | tuple[str, ...] | None, *, name: str = "group_by") -> tuple[str, ...]:
    if not value:
        return ()
    parts = value.split(",") if isinstance(value, str) else list(value)
    groups = tuple(dict.fromkeys(p.strip().lower() for p in parts if p.strip()))
    bad = [g for g in groups if g not in GROUPS]
    if bad:
        raise ValidationError(f"Unknown group {', '.join(bad)}.",
                              details={name: f"unknown: {', '.join(bad)}; choose from {', '.join(GROUPS)}"})
    return groups


def parse_tz(value: str | None, *, name: str = "tz") -> ZoneInfo:
    try:
        return ZoneInfo((value or "UTC").strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError("Unknown time zone.", details={name: f"{value!r} is not an IANA time zone"}) from None


def parse_query(*, start: str | None, end: str | None, tz: str | None = None, group_by: Any = None,
                user_id: int | None = None, key_id: int | None = None, model: str | None = None,
                now: datetime | None = None) -> ReportQuery:
    """Validate report parameters; errors name the field. Defaults: the last 7 days to now."""
    zone = parse_tz(tz)
    now = now or datetime.now(timezone.utc)
    end_at = _parse_moment(end, zone, name="end", is_end=True) if end else now
    try:
        start_at = _parse_moment(start, zone, name="start", is_end=False) if start else end_at - timedelta(days=7)
    except OverflowError:  # the default start, a week before an end in year 1
        raise ValidationError("Invalid end.", details={"end": "is out of range"}) from None
    if model is not None and "\x00" in model:  # no model has one, and PostgreSQL refuses it in a query
        raise ValidationError("Invalid model.", details={"model": "must not contain NUL characters"})
    if user_id is not None and not is_row_id(user_id):
        raise ValidationError("Invalid user_id.", details={"user_id": "must be a positive integer id"})
    if key_id is not None and key_id != NO_KEY and not is_row_id(key_id):
        raise ValidationError("Invalid key_id.", details={"key_id": f"must be a key's id ({NO_KEY}: calls without a key)"})
    if end_at <= start_at:
        raise ValidationError("end must be after start.", details={"end": "must be after start"})
    if end_at - start_at > MAX_RANGE:
        raise ValidationError("Range too long.", details={"start": "the range may span at most 3 years"})
    return ReportQuery(start_at, end_at, zone, parse_group_by(group_by), user_id, key_id, model)


def parse_since(value: str) -> timedelta:
    """``7d``, ``12h``, ``2w``, ``90m`` → a timedelta (for ``llmgate usage report --since``)."""
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    text = (value or "").strip().lower()
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise ValidationError("Invalid duration.", details={"since": "use a number and a unit: 90m, 12h, 7d, 2w"})
    return timedelta(**{units[text[-1]]: int(text[:-1])})


# --- querying -----------------------------------------------------------------------------------

def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    floored = _floor_hour(moment)
    return floored if floored == moment else floored + timedelta(hours=1)


def _use_daily(q: ReportQuery) -> bool:
    midnight = time()
    return ("hour" not in q.group_by and q.start.time() == midnight and q.end.time() == midnight
            and all(q.tz.utcoffset(m) == timedelta(0) for m in (q.start, q.end))
            and q.tz.key in ("UTC", "Etc/UTC", "Etc/GMT", "GMT", "Universal", "Zulu", "Etc/Universal", "Etc/Zulu"))


def _select(q: ReportQuery):
    daily = _use_daily(q)
    model = UsageDaily if daily else UsageHourly
    bucket = model.day if daily else model.hour
    if daily:
        lower, upper = q.start.date(), q.end.date()
    else:  # hour resolution: bounds are widened to whole UTC hours
        lower, upper = _floor_hour(q.start), _ceil_hour(q.end)
    dims = [getattr(model, _DIMENSION_COLUMNS[g]) for g in q.group_by if g in _DIMENSION_COLUMNS]
    keys = ([bucket.label("bucket")] if ("day" in q.group_by or "hour" in q.group_by) else []) + dims
    sums = [sa.func.sum(getattr(model, m)).label(m) for m in METRICS]
    stmt = sa.select(*keys, *sums).where(bucket >= lower, bucket < upper)
    if q.user_id is not None:
        stmt = stmt.where(model.user_id == q.user_id)
    if q.key_id is not None:
        stmt = stmt.where(model.key_id == q.key_id)
    if q.model is not None:
        stmt = stmt.where(model.model == q.model)
    if keys:
        stmt = stmt.group_by(*keys)
    return stmt, daily


def build_report(q: ReportQuery) -> Report:
    import pandas as pd
    stmt, daily = _select(q)
    result = db.session.execute(stmt)
    frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    time_groups = [g for g in q.group_by if g in ("day", "hour")]
    if "bucket" in frame.columns:
        if daily:
            frame["day"] = frame.pop("bucket").map(lambda d: d.isoformat())
        else:
            local = frame.pop("bucket").map(lambda h: _as_utc(h).astimezone(q.tz))
            if "day" in time_groups:
                frame["day"] = local.map(lambda m: m.date().isoformat())
            if "hour" in time_groups:
                frame["hour"] = local.map(lambda m: m.isoformat())
    frame = frame.rename(columns={"key_id": "key", "user_id": "user"})
    for metric in METRICS:
        frame[metric] = pd.to_numeric(frame[metric]).fillna(0)
        frame[metric] = frame[metric].astype("float64" if metric == "cost_usd" else "int64")
    group_columns = list(q.group_by)
    if group_columns and not frame.empty:
        frame = frame.groupby(group_columns, as_index=False, sort=True, dropna=False)[list(METRICS)].sum()
    frame = frame[group_columns + list(METRICS)] if not frame.empty else pd.DataFrame(
        {c: pd.Series(dtype="int64" if c in METRICS and c != "cost_usd" else "float64" if c == "cost_usd"
                      else "object") for c in group_columns + list(METRICS)})
    if "hour" in frame.columns and not frame.empty:  # chronological, also across a repeated DST hour
        order = pd.to_datetime(frame["hour"], utc=True).rename("_utc")
        frame = frame.assign(_utc=order).sort_values(["_utc", *[c for c in group_columns if c != "hour"]],
                                                     kind="stable").drop(columns="_utc")
    frame["cost_usd"] = frame["cost_usd"].round(8)
    if "key" in frame.columns:
        frame["key"] = frame["key"].map(lambda k: None if k == NO_KEY else int(k)).astype("object")
        frame.insert(frame.columns.get_loc("key") + 1, "key_prefix", _labels(ApiKey, ApiKey.prefix, frame["key"]))
    if "user" in frame.columns:
        frame["user"] = frame["user"].astype("int64")
        frame.insert(frame.columns.get_loc("user") + 1, "user_email", _labels(User, User.email, frame["user"]))
    totals = {m: (round(float(frame[m].sum()), 8) if m == "cost_usd" else int(frame[m].sum())) for m in METRICS}
    return Report(q, frame.reset_index(drop=True), totals)


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _labels(model, column, ids: pd.Series) -> list[str | None]:
    import pandas as pd
    wanted = sorted({int(i) for i in ids if i is not None and not pd.isna(i)})
    names = dict(db.session.execute(sa.select(model.id, column).where(model.id.in_(wanted))).all()) if wanted else {}
    return [None if i is None or pd.isna(i) else names.get(int(i)) for i in ids]


# --- serialising --------------------------------------------------------------------------------

def _meta(report: Report) -> dict[str, Any]:
    q = report.query
    return {"start": q.start.isoformat(), "end": q.end.isoformat(), "tz": q.tz.key, "group_by": list(q.group_by),
            "filters": {"user": q.user_id, "key": q.key_id, "model": q.model}}


def to_json(report: Report) -> dict[str, Any]:
    rows = json.loads(report.rows.to_json(orient="records", date_format="iso"))
    return {**_meta(report), "rows": rows, "totals": report.totals}


def to_csv(report: Report) -> str:
    """The rows, then a ``total`` row (first column ``total``, other group columns empty)."""
    import pandas as pd
    frame = report.rows.copy()
    total = {c: None for c in frame.columns}
    total.update(report.totals)
    first = frame.columns[0]
    if first not in METRICS:
        total[first] = "total"
    frame = pd.concat([frame, pd.DataFrame([total], columns=frame.columns)], ignore_index=True)
    return frame.to_csv(index=False)


def to_parquet(report: Report) -> bytes:
    """The rows; totals and the query travel in the file's key-value metadata (``llmgate``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(report.rows, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[b"llmgate"] = json.dumps({**_meta(report), "totals": report.totals}).encode()
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(metadata), buffer)
    return buffer.getvalue()
