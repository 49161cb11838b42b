"""The usage ledger: one row per upstream call, and the hourly and daily rollups reports read.

Rows arrive from the drainer (``llmgate.accounting.drain``), never from the request path. The
rollups are keyed by UTC hour / UTC day × user × key × model × provider; ``key_id`` is 0 in a
rollup for calls made with a JWT rather than a key, because NULLs never conflict in a unique
index and the upsert needs them to.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, Float, Index, Integer, Numeric, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants 64 bits for a ledger.
_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")
_COST = Numeric(20, 8)
NO_KEY = 0  # rollup key_id for JWT-authenticated calls


class UsageEvent(db.Model):
    __tablename__ = "usage_events"
    __table_args__ = (
        Index("ix_usage_events_ts", "ts"),
        Index("ix_usage_events_user_id_ts", "user_id", "ts"),
        Index("ix_usage_events_key_id_ts", "key_id", "ts"),
        Index("ix_usage_events_batch_id", "batch_id"),
    )

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)  # replays are no-ops
    request_id: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    key_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    user_id: Mapped[int] = mapped_column(Integer, nullable=False)
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    deployment_id: Mapped[str] = mapped_column(String(220), nullable=False)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    input_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cost_usd: Mapped[Decimal | None] = mapped_column(_COST, nullable=True)  # NULL: price unknown
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)  # ok | error | cancelled
    error_kind: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempt: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)
    batch_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class _RollupColumns:
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    cached_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(_COST, nullable=False, default=0)  # sum of known costs
    cost_unknown: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)  # calls without a price


class UsageHourly(_RollupColumns, db.Model):
    """UTC hour buckets: exact for reports in any time zone whose offset is whole hours."""

    __tablename__ = "usage_hourly"
    __table_args__ = (
        Index("ix_usage_hourly_user_id_hour", "user_id", "hour"),
        Index("ix_usage_hourly_key_id_hour", "key_id", "hour"),
    )

    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)


class UsageDaily(_RollupColumns, db.Model):
    """UTC day buckets: the fast path for reports by UTC day and for long ranges."""

    __tablename__ = "usage_daily"
    __table_args__ = (
        Index("ix_usage_daily_user_id_day", "user_id", "day"),
        Index("ix_usage_daily_key_id_day", "key_id", "day"),
    )

    day: Mapped[date] = mapped_column(Date, primary_key=True)


ROLLUP_KEYS = ("user_id", "key_id", "model", "provider")
ROLLUP_SUMS = ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens", "cost_usd", "cost_unknown")
