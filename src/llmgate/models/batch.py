"""Batches (OpenAI-style JSONL or llmgate's tabular ones) and their rows.

A batch's rows are the unit of work and of crash safety: each row goes from ``pending`` to
``done`` or ``failed`` exactly once, by a conditional update (see ``llmgate.batches.runner``).
Counts on the batch move in the same transaction as the rows, so they are exact.
"""
from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import TimestampMixin, UTCDateTime

KINDS = ("openai", "tabular")
STATUSES = ("validating", "failed", "in_progress", "paused", "finalizing", "completed", "expired",
            "cancelling", "cancelled")
FINAL_STATUSES = ("failed", "completed", "expired", "cancelled")
ROW_STATUSES = ("pending", "done", "failed")


def new_batch_id() -> str:
    return "batch_" + secrets.token_hex(12)


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Batch(TimestampMixin, db.Model):
    __tablename__ = "batches"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(KINDS)})", name="kind"),
        CheckConstraint(f"status IN ({_in(STATUSES)})", name="status"),
        Index("ix_batches_user_id_created_at", "user_id", "created_at"),
        Index("ix_batches_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_batch_id)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    # The key the batch was submitted with: its allow-list, limits and budget apply to every row.
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"), nullable=True)
    endpoint: Mapped[str] = mapped_column(String(64), nullable=False, default="/v1/chat/completions")
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)  # tabular batches
    # No foreign key: as with OpenAI, a batch keeps naming its input file after the file is deleted.
    input_file_id: Mapped[str] = mapped_column(String(40), nullable=False)
    output_file_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    error_file_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    completion_window: Mapped[str] = mapped_column(String(8), nullable=False, default="24h")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="validating")
    pause_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    # "metadata" is reserved on declarative classes: the attribute is ``meta``, the column is not.
    meta: Mapped[dict[str, str] | None] = mapped_column("metadata", JSON, nullable=True)
    # Tabular settings: template, system, schema, params, input columns and format.
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    webhook_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    completed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    chunks: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    cost_usd: Mapped[float] = mapped_column(db.Numeric(18, 8, asdecimal=False), nullable=False, default=0.0)
    in_progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finalizing_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancelling_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def __repr__(self) -> str:
        return f"<Batch {self.id} {self.kind} {self.status}>"


class BatchRow(db.Model):
    __tablename__ = "batch_rows"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(ROW_STATUSES)})", name="status"),
        Index("ix_batch_rows_batch_id_chunk_status", "batch_id", "chunk", "status"),
        Index("uq_batch_rows_batch_id_position", "batch_id", "position", unique=True),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)  # 0-based order in the input
    chunk: Mapped[int] = mapped_column(Integer, nullable=False)
    custom_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    status: Mapped[str] = mapped_column(String(8), nullable=False, default="pending")
    # OpenAI batches: the request body; tabular: the row's cells by column name.
    input: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
