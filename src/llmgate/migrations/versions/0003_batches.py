"""Batches: stored files, batches (OpenAI-style and tabular) and their rows.

Revision ID: 0003_batches
Revises: 0002_accounting
Create Date: 2025-01-01

Written by hand so that it reads the same on SQLite and PostgreSQL.
"""
from alembic import op
import sqlalchemy as sa

from llmgate.models.base import UTCDateTime

revision = "0003_batches"
down_revision = "0002_accounting"
branch_labels = None
depends_on = None

_KINDS = "kind IN ('openai', 'tabular')"
_STATUSES = ("status IN ('validating', 'failed', 'in_progress', 'paused', 'finalizing', 'completed', "
             "'expired', 'cancelling', 'cancelled')")
_ROW_STATUSES = "status IN ('pending', 'done', 'failed')"


def upgrade():
    op.create_table(
        "files",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("storage_name", sa.String(80), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_files_user_id_users"), ondelete="CASCADE"),
    )
    op.create_index("ix_files_user_id_created_at", "files", ["user_id", "created_at"])
    op.create_table(
        "batches",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("input_file_id", sa.String(40), nullable=False),
        sa.Column("output_file_id", sa.String(40), nullable=True),
        sa.Column("error_file_id", sa.String(40), nullable=True),
        sa.Column("completion_window", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pause_reason", sa.Text(), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("options", sa.JSON(), nullable=True),
        sa.Column("webhook_url", sa.String(2000), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(18, 8), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        *[sa.Column(name, UTCDateTime(), nullable=True) for name in (
            "in_progress_at", "expires_at", "finalizing_at", "completed_at", "failed_at", "expired_at",
            "cancelling_at", "cancelled_at", "paused_at")],
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_batches_user_id_users"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_batches_key_id_api_keys"),
                                ondelete="SET NULL"),
        sa.CheckConstraint(_KINDS, name=op.f("ck_batches_kind")),
        sa.CheckConstraint(_STATUSES, name=op.f("ck_batches_status")),
    )
    op.create_index("ix_batches_user_id_created_at", "batches", ["user_id", "created_at"])
    op.create_index("ix_batches_status", "batches", ["status"])
    op.create_table(
        "batch_rows",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("batch_id", sa.String(40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("custom_id", sa.String(512), nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_rows")),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name=op.f("fk_batch_rows_batch_id_batches"),
                                ondelete="CASCADE"),
        sa.CheckConstraint(_ROW_STATUSES, name=op.f("ck_batch_rows_status")),
    )
    op.create_index("ix_batch_rows_batch_id_chunk_status", "batch_rows", ["batch_id", "chunk", "status"])
    op.create_index("uq_batch_rows_batch_id_position", "batch_rows", ["batch_id", "position"], unique=True)


def downgrade():
    op.drop_index("uq_batch_rows_batch_id_position", table_name="batch_rows")
    op.drop_index("ix_batch_rows_batch_id_chunk_status", table_name="batch_rows")
    op.drop_table("batch_rows")
    op.drop_index("ix_batches_status", table_name="batches")
    op.drop_index("ix_batches_user_id_created_at", table_name="batches")
    op.drop_table("batches")
    op.drop_index("ix_files_user_id_created_at", table_name="files")
    op.drop_table("files")
