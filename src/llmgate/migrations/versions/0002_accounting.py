"""Accounting: the usage ledger (one row per upstream call) and its hourly and daily rollups.

Revision ID: 0002_accounting
Revises: 0001_foundation
Create Date: 2025-01-02

Written by hand so that it reads the same on SQLite and PostgreSQL. Rollups are keyed by their
bucket first so that a report over a date range is a primary-key range scan.
"""
from alembic import op
import sqlalchemy as sa

from llmgate.models.base import UTCDateTime

revision = "0002_accounting"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

_COST = sa.Numeric(20, 8)


def _rollup_columns() -> list[sa.Column]:
    return [
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", _COST, nullable=False),
        sa.Column("cost_unknown", sa.BigInteger(), nullable=False),
    ]


def upgrade():
    op.create_table(
        "usage_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("ts", UTCDateTime(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("deployment_id", sa.String(220), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", _COST, nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_kind", sa.String(64), nullable=True),
        sa.Column("attempt", sa.SmallInteger(), nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_usage_events_event_id")),
    )
    op.create_index("ix_usage_events_ts", "usage_events", ["ts"])
    op.create_index("ix_usage_events_user_id_ts", "usage_events", ["user_id", "ts"])
    op.create_index("ix_usage_events_key_id_ts", "usage_events", ["key_id", "ts"])
    op.create_index("ix_usage_events_batch_id", "usage_events", ["batch_id"])

    op.create_table(
        "usage_hourly",
        sa.Column("hour", UTCDateTime(), nullable=False),
        *_rollup_columns(),
        sa.PrimaryKeyConstraint("hour", "user_id", "key_id", "model", "provider", name=op.f("pk_usage_hourly")),
    )
    op.create_index("ix_usage_hourly_user_id_hour", "usage_hourly", ["user_id", "hour"])
    op.create_index("ix_usage_hourly_key_id_hour", "usage_hourly", ["key_id", "hour"])

    op.create_table(
        "usage_daily",
        sa.Column("day", sa.Date(), nullable=False),
        *_rollup_columns(),
        sa.PrimaryKeyConstraint("day", "user_id", "key_id", "model", "provider", name=op.f("pk_usage_daily")),
    )
    op.create_index("ix_usage_daily_user_id_day", "usage_daily", ["user_id", "day"])
    op.create_index("ix_usage_daily_key_id_day", "usage_daily", ["key_id", "day"])


def downgrade():
    for index, table in (("ix_usage_daily_key_id_day", "usage_daily"), ("ix_usage_daily_user_id_day", "usage_daily"),
                         ("ix_usage_hourly_key_id_hour", "usage_hourly"),
                         ("ix_usage_hourly_user_id_hour", "usage_hourly"),
                         ("ix_usage_events_batch_id", "usage_events"), ("ix_usage_events_key_id_ts", "usage_events"),
                         ("ix_usage_events_user_id_ts", "usage_events"), ("ix_usage_events_ts", "usage_events")):
        op.drop_index(index, table_name=table)
    op.drop_table("usage_daily")
    op.drop_table("usage_hourly")
    op.drop_table("usage_events")
