"""Stored files: upload, list, fetch, delete, always scoped to their owner.

Another user's file answers 404, exactly like a missing one, so ids leak nothing. The row is
committed only after the bytes are in place, and the bytes are removed if the row is not.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select

from ..auth.principal import Principal
from ..errors import Conflict, NotFound, ValidationError
from ..extensions import db
from ..models.base import is_row_id
from ..models.batch import FINAL_STATUSES, Batch
from ..models.file import PURPOSES, StoredFile, new_file_id
from . import storage

UPLOAD_PURPOSES = ("batch", "user_data")
MAX_LIST = 10_000


def _clean_filename(filename: str | None) -> str:
    # No control characters: they are no use in a name, and PostgreSQL cannot store NUL.
    name = "".join(c for c in (filename or "upload") if c >= " " and c != "\x7f")
    name = Path(name.replace("\\", "/")).name.strip() or "upload"
    return name[:255]


def check_purpose(purpose: Any) -> str:
    if purpose not in UPLOAD_PURPOSES:
        raise ValidationError(f"purpose must be one of {', '.join(UPLOAD_PURPOSES)}.",
                              details={"purpose": "invalid"}, param="purpose")
    return purpose


def record(*, user_id: int, pending: storage.PendingFile, filename: str, purpose: str) -> StoredFile:
    """Rename ``pending`` into place and add its row to the session (the caller commits)."""
    if purpose not in PURPOSES:
        raise ValidationError("unknown purpose", details={"purpose": purpose})
    pending.commit()
    row = StoredFile(id=new_file_id(), user_id=user_id, filename=_clean_filename(filename), purpose=purpose, bytes=pending.size,
                     storage_name=pending.storage_name)
    db.session.add(row)
    return row


def upload(*, principal: Principal, stream: BinaryIO, filename: str | None, purpose: str) -> StoredFile:
    check_purpose(purpose)
    with storage.PendingFile() as pending:
        pending.fill_from(stream)
        try:
            row = record(user_id=principal.user_id, pending=pending, filename=filename, purpose=purpose)
            db.session.commit()
        except Exception:
            db.session.rollback()
            storage.remove(pending.storage_name)
            raise
    return row


def get(*, principal: Principal, file_id: str) -> StoredFile:
    row = db.session.get(StoredFile, file_id) if isinstance(file_id, str) and is_row_id(file_id) else None
    if row is None or row.user_id != principal.user_id:
        raise NotFound(f"No such File object: {file_id}", code="file_not_found", param="file_id")
    return row


def list_files(*, principal: Principal, purpose: str | None = None, limit: int = 10_000, after: str | None = None,
               order: str = "desc") -> tuple[list[StoredFile], bool]:
    """``(page, has_more)``, newest first unless ``order="asc"``; ``after`` is the last id seen."""
    if order not in ("asc", "desc"):
        raise ValidationError("order must be 'asc' or 'desc'.", details={"order": "invalid"}, param="order")
    if purpose and purpose not in PURPOSES:
        raise ValidationError(f"purpose must be one of {', '.join(PURPOSES)}.", details={"purpose": "invalid"},
                              param="purpose")
    query = select(StoredFile).where(StoredFile.user_id == principal.user_id)
    if purpose:
        query = query.where(StoredFile.purpose == purpose)
    newest_first = order == "desc"
    if after:
        # (created_at, id) is the sort key: files uploaded in the same instant are neither skipped nor repeated.
        cursor = get(principal=principal, file_id=after)
        if newest_first:
            query = query.where((StoredFile.created_at < cursor.created_at)
                                | ((StoredFile.created_at == cursor.created_at) & (StoredFile.id < cursor.id)))
        else:
            query = query.where((StoredFile.created_at > cursor.created_at)
                                | ((StoredFile.created_at == cursor.created_at) & (StoredFile.id > cursor.id)))
    ordering = (StoredFile.created_at.desc(), StoredFile.id.desc()) if newest_first else (
        StoredFile.created_at.asc(), StoredFile.id.asc())
    limit = max(1, min(int(limit), MAX_LIST))
    page = list(db.session.execute(query.order_by(*ordering).limit(limit + 1)).scalars())
    return page[:limit], len(page) > limit


def content_path(*, principal: Principal, file_id: str) -> tuple[StoredFile, Path]:
    row = get(principal=principal, file_id=file_id)
    path = storage.path_of(row.storage_name)
    if not path.exists():
        raise NotFound(f"The content of {file_id} is gone.", code="file_not_found")
    return row, path


def delete(*, principal: Principal, file_id: str) -> StoredFile:
    row = get(principal=principal, file_id=file_id)
    busy = db.session.execute(select(Batch.id).where(
        Batch.user_id == principal.user_id, Batch.input_file_id == file_id,
        Batch.status.not_in(FINAL_STATUSES)).limit(1)).scalar_one_or_none()
    if busy:
        raise Conflict(f"{file_id} is the input of {busy}, which has not finished.", param="file_id")
    db.session.delete(row)
    db.session.commit()
    storage.remove(row.storage_name)
    return row


def file_object(row: StoredFile) -> dict[str, Any]:
    """The OpenAI ``File`` object."""
    return {"id": row.id, "object": "file", "bytes": row.bytes, "created_at": int(row.created_at.timestamp()),
            "filename": row.filename, "purpose": row.purpose, "status": "processed", "status_details": None,
            "expires_at": None}
