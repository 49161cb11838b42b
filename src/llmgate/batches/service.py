"""Batches as their owners see them: create (OpenAI style), find, list, act, follow progress.

Keyword-only functions over a ``Principal``; they raise domain errors and know no HTTP. The
``/v1/batches`` views, the ``/api/batches`` namespace, the CLI and the dashboard all call these.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select

from ..auth.principal import Principal
from ..errors import NotFound, ValidationError
from ..extensions import db
from ..models.base import is_row_id, utcnow
from ..models.batch import KINDS, Batch
from . import control, dispatch, files, ingest, lifecycle, webhook
from .rows import ENDPOINTS

COMPLETION_WINDOWS = ("24h",)
MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512


def check_metadata(metadata: Any) -> dict[str, str] | None:
    if metadata is None:
        return None
    if (not isinstance(metadata, dict) or len(metadata) > MAX_METADATA_PAIRS
            or any(not isinstance(k, str) or len(k) > MAX_METADATA_KEY or not isinstance(v, str)
                   or len(v) > MAX_METADATA_VALUE for k, v in metadata.items())):
        raise ValidationError(f"metadata must map at most {MAX_METADATA_PAIRS} string keys (≤{MAX_METADATA_KEY} chars) "
                              f"to string values (≤{MAX_METADATA_VALUE} chars).", details={"metadata": "invalid"},
                              param="metadata")
    return metadata


def start(batch: Batch) -> Batch:
    """Commit a new batch and hand its ingestion to a worker."""
    db.session.add(batch)
    db.session.commit()
    dispatch.enqueue(batch.id, "ingest")
    return batch


def create_openai_batch(*, principal: Principal, input_file_id: Any, endpoint: Any, completion_window: Any = "24h",
                        metadata: Any = None, webhook_url: Any = None) -> Batch:
    if not isinstance(input_file_id, str) or not input_file_id:
        raise ValidationError("input_file_id is required.", details={"input_file_id": "required"}, param="input_file_id")
    if endpoint not in ENDPOINTS:
        raise ValidationError(f"endpoint must be one of {', '.join(ENDPOINTS)}.", details={"endpoint": "unsupported"},
                              param="endpoint")
    if completion_window not in COMPLETION_WINDOWS:
        raise ValidationError("completion_window must be 24h.", details={"completion_window": "unsupported"},
                              param="completion_window")
    source = files.get(principal=principal, file_id=input_file_id)
    if source.purpose != "batch":
        raise ValidationError(f"{input_file_id} was uploaded with purpose {source.purpose!r}; batches need 'batch'.",
                              details={"input_file_id": "wrong purpose"}, param="input_file_id")
    now = utcnow()
    batch = Batch(kind="openai", user_id=principal.user_id, key_id=principal.key_id, endpoint=endpoint,
                  input_file_id=source.id, completion_window=completion_window, status="validating",
                  meta=check_metadata(metadata), webhook_url=webhook.check(webhook_url), created_at=now,
                  expires_at=now + ingest.window(completion_window), options={})
    return start(batch)


def get(*, principal: Principal, batch_id: str) -> Batch:
    batch = db.session.get(Batch, batch_id) if isinstance(batch_id, str) and is_row_id(batch_id) else None
    if batch is None or (batch.user_id != principal.user_id and not principal.is_admin):
        raise NotFound(f"No batch found with id '{batch_id}'.", code="batch_not_found", param="batch_id")
    return batch


def list_batches(*, principal: Principal, after: str | None = None, limit: int = 20, kind: str | None = None,
                 everyone: bool = False) -> tuple[list[Batch], bool]:
    """Newest first; ``(page, has_more)``. ``everyone`` lists all users' batches (admins only)."""
    limit = max(1, min(int(limit), 100))
    if kind and kind not in KINDS:
        raise ValidationError(f"kind must be one of {', '.join(KINDS)}.", details={"kind": "invalid"}, param="kind")
    query = select(Batch)
    if not (everyone and principal.is_admin):
        query = query.where(Batch.user_id == principal.user_id)
    if kind:
        query = query.where(Batch.kind == kind)
    if after:
        cursor = get(principal=principal, batch_id=after)
        query = query.where((Batch.created_at < cursor.created_at)
                            | ((Batch.created_at == cursor.created_at) & (Batch.id < cursor.id)))
    page = list(db.session.execute(query.order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit + 1)).scalars())
    return page[:limit], len(page) > limit


def cancel(*, principal: Principal, batch_id: str) -> Batch:
    return lifecycle.cancel(get(principal=principal, batch_id=batch_id))


def pause(*, principal: Principal, batch_id: str) -> Batch:
    return lifecycle.pause(get(principal=principal, batch_id=batch_id))


def resume(*, principal: Principal, batch_id: str) -> Batch:
    return lifecycle.resume(get(principal=principal, batch_id=batch_id))


def progress(batch: Batch) -> dict[str, Any]:
    """Done, failed, rows per second over the last half minute, and the time left at that pace."""
    finished = batch.completed + batch.failed
    remaining = max(batch.total - finished, 0)
    rate = control.rows_per_second(batch.id) if batch.status == "in_progress" else 0.0
    return {"total": batch.total, "completed": batch.completed, "failed": batch.failed, "pending": remaining,
            "percent": round(100.0 * finished / batch.total, 1) if batch.total else 0.0,
            "rows_per_second": round(rate, 2), "eta_seconds": round(remaining / rate) if rate > 0 else None,
            "input_tokens": batch.input_tokens, "output_tokens": batch.output_tokens,
            "cost_usd": round(float(batch.cost_usd or 0), 6)}


def _unix(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


def batch_object(batch: Batch) -> dict[str, Any]:
    """The OpenAI ``Batch`` object (llmgate's ``paused`` status included when it applies)."""
    failed_count = batch.failed
    return {
        "id": batch.id, "object": "batch", "endpoint": batch.endpoint, "errors": batch.errors,
        "input_file_id": batch.input_file_id, "completion_window": batch.completion_window, "status": batch.status,
        "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id,
        "created_at": _unix(batch.created_at), "in_progress_at": _unix(batch.in_progress_at),
        "expires_at": _unix(batch.expires_at), "finalizing_at": _unix(batch.finalizing_at),
        "completed_at": _unix(batch.completed_at), "failed_at": _unix(batch.failed_at),
        "expired_at": _unix(batch.expired_at), "cancelling_at": _unix(batch.cancelling_at),
        "cancelled_at": _unix(batch.cancelled_at),
        "request_counts": {"total": batch.total, "completed": batch.completed, "failed": failed_count},
        "metadata": batch.meta,
    }


def current_config(name: str, default: Any) -> Any:
    return current_app.config.get(name, default)
