"""Column types and mixins shared by every model."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, TypeDecorator
from sqlalchemy.orm import Mapped, mapped_column


# Numeric ids (users, keys, and the user/key columns that refer to them) are INTEGER columns:
# 32-bit on PostgreSQL, 64-bit on SQLite. A number outside that range names no row, but comparing
# one with such a column is not harmless: PostgreSQL answers "integer out of range" and SQLite's
# driver raises OverflowError, instead of matching nothing. Likewise text with a NUL character
# (PostgreSQL refuses it). Check what a caller sent with is_row_id before querying with it.
MAX_ROW_ID = 2**31 - 1


def is_row_id(value: object) -> bool:
    """Whether ``value`` could be a row's id (an int in range, or text without NUL): safe to look up."""
    if isinstance(value, str):
        return "\x00" not in value
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ROW_ID


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are normalised to
    UTC on the way in and marked UTC on the way out. Naive datetimes are refused, not guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; llmgate stores timezone-aware UTC times")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
