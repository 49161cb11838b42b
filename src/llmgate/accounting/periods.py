"""Budget periods as UTC buckets: which bucket a moment falls in and when that bucket ends.

Every function takes ``now`` so that callers (and tests) decide what time it is.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

PERIODS = ("day", "week", "month", "total")


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError("naive datetime given; budget periods are computed in UTC")
    return now.astimezone(timezone.utc)


def period_start(period: str, now: datetime | None = None) -> datetime | None:
    """The first instant of the period containing ``now`` (None for ``total``)."""
    now = _utc(now)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return midnight
    if period == "week":  # ISO weeks: Monday 00:00 UTC
        return midnight - timedelta(days=midnight.weekday())
    if period == "month":
        return midnight.replace(day=1)
    if period == "total":
        return None
    raise ValueError(f"unknown budget period {period!r}")


def period_end(period: str, now: datetime | None = None) -> datetime | None:
    """When the period containing ``now`` resets (None for ``total``: it never does)."""
    start = period_start(period, now)
    if start is None:
        return None
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    return (start.replace(year=start.year + 1, month=1) if start.month == 12
            else start.replace(month=start.month + 1))


def bucket_id(period: str, now: datetime | None = None) -> str:
    """A short stable name for the bucket: ``d20260329``, ``w20260323``, ``m202603``, ``total``."""
    start = period_start(period, now)
    if start is None:
        return "total"
    if period == "month":
        return start.strftime("m%Y%m")
    return start.strftime(("d" if period == "day" else "w") + "%Y%m%d")

