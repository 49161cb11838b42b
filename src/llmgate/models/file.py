"""Files uploaded through ``/v1/files`` or ``/api/batches``, and the files batches produce.

The bytes live under ``FILES_DIR`` (see ``llmgate.batches.storage``); this row says who owns
them and what they are for. Owner-scoped: nobody else sees a file, not even by id.
"""
from __future__ import annotations

import secrets

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import TimestampMixin

PURPOSES = ("batch", "batch_output", "user_data")


def new_file_id() -> str:
    return "file-" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


class StoredFile(TimestampMixin, db.Model):
    __tablename__ = "files"
    __table_args__ = (Index("ix_files_user_id_created_at", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_file_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # The name under FILES_DIR; never a client-supplied path.
    storage_name: Mapped[str] = mapped_column(String(80), nullable=False)

    def __repr__(self) -> str:
        return f"<StoredFile {self.id} {self.filename!r} {self.purpose}>"
