"""Turning an input file into ``batch_rows``: validated line by line, inserted in bulk.

Runs in a worker (the batch is ``validating`` meanwhile). It is idempotent — rows left by an
earlier, interrupted run are deleted first — so the supervisor may simply run it again. An
OpenAI input with bad lines fails the batch with ``errors.data`` naming each line, as OpenAI does.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, update

from ..auth.principal import Principal
from ..extensions import db
from ..gateway.catalog import get_catalog
from ..models.base import utcnow
from ..models.batch import Batch, BatchRow
from ..models.file import StoredFile
from . import control, storage, tables
from .rows import CHAT, EMBEDDINGS

MAX_LISTED_ERRORS = 100
INSERT_GROUP = 2000


class LineError(Exception):
    def __init__(self, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


def chunk_rows() -> int:
    return control.setting("BATCH_CHUNK_ROWS", 500)


def check_request_line(line: str, *, endpoint: str, models: set[str], principal: Principal | None) -> tuple[str, dict]:
    """``(custom_id, body)`` of one JSONL request line, or ``LineError`` saying what is wrong."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as error:
        raise LineError("invalid_json_line", f"This line is not parseable as valid JSON: {error.msg}.") from None
    if not isinstance(item, dict):
        raise LineError("invalid_json_line", "This line is not a JSON object.")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise LineError("missing_required_parameter", "custom_id is required and must be a string.", "custom_id")
    if len(custom_id) > 512:
        raise LineError("invalid_value", "custom_id is longer than 512 characters.", "custom_id")
    if str(item.get("method", "POST")).upper() != "POST":
        raise LineError("invalid_method", "method must be POST.", "method")
    url = item.get("url")
    if url != endpoint:
        raise LineError("mismatched_url" if url in (CHAT, EMBEDDINGS) else "invalid_url",
                        f"url must be {endpoint}, the batch's endpoint (got {url!r}).", "url")
    body = item.get("body")
    if not isinstance(body, dict):
        raise LineError("missing_required_parameter", "body is required and must be a JSON object.", "body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise LineError("missing_required_parameter", "body.model is required.", "body.model")
    if model not in models or (principal is not None and not principal.may_use(model)):
        raise LineError("model_not_found", f"The model `{model}` does not exist or you do not have access to it.",
                        "body.model")
    if endpoint == CHAT and (not isinstance(body.get("messages"), list) or not body["messages"]):
        raise LineError("missing_required_parameter", "body.messages must be a non-empty array.", "body.messages")
    if endpoint == EMBEDDINGS and body.get("input") in (None, "", []):
        raise LineError("missing_required_parameter", "body.input is required.", "body.input")
    if body.get("stream"):
        raise LineError("invalid_value", "streaming is not available in batches.", "body.stream")
    return custom_id, body


def _request_rows(path, batch: Batch, principal: Principal | None, errors: list[dict[str, Any]]) -> Iterator[dict]:
    models = set(get_catalog().names())
    seen: set[str] = set()
    position = 0
    with open(path, encoding="utf-8", errors="strict") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    custom_id, body = check_request_line(line, endpoint=batch.endpoint, models=models,
                                                         principal=principal)
                    if custom_id in seen:
                        raise LineError("duplicate_custom_id", f"The custom_id {custom_id!r} is used more than once.",
                                        "custom_id")
                except LineError as error:
                    errors.append({"code": error.code, "message": error.message, "param": error.param, "line": number})
                    continue
                seen.add(custom_id)
                yield {"custom_id": custom_id, "input": body, "position": position}
                position += 1
        except UnicodeDecodeError:
            errors.append({"code": "invalid_file", "message": "The file is not valid UTF-8 text.", "param": None,
                           "line": None})


def _table_rows(path, batch: Batch, errors: list[dict[str, Any]]) -> Iterator[dict]:
    position = 0
    try:
        for _columns, rows in tables.iter_chunks(path, batch.options["format"], chunk_rows=INSERT_GROUP):
            for cells in rows:
                yield {"custom_id": None, "input": cells, "position": position}
                position += 1
    except tables.TableError as error:
        errors.append({"code": "invalid_file", "message": error.message, "param": None, "line": None})


def ingest(*, batch_id: str, principal: Principal | None = None) -> Batch | None:
    """Fill ``batch_rows`` from the input file and start the batch (or fail it, listing lines)."""
    batch = db.session.get(Batch, batch_id)
    if batch is None or batch.status != "validating":
        return batch
    source = db.session.get(StoredFile, batch.input_file_id)
    # A run that died half-way left rows behind: start over rather than guess where it stopped.
    db.session.execute(delete(BatchRow).where(BatchRow.batch_id == batch_id))
    db.session.commit()
    errors: list[dict[str, Any]] = []
    if source is None or not storage.path_of(source.storage_name).exists():
        errors.append({"code": "invalid_file", "message": "The input file is gone.", "param": None, "line": None})
        produced = iter(())
    elif batch.kind == "openai":
        produced = _request_rows(storage.path_of(source.storage_name), batch, principal, errors)
    else:
        produced = _table_rows(storage.path_of(source.storage_name), batch, errors)
    size = chunk_rows()
    group: list[dict[str, Any]] = []
    total = 0
    for row in produced:
        if errors:  # keep reading to list every bad line, but stop writing rows
            continue
        group.append({"batch_id": batch_id, "chunk": row["position"] // size, "status": "pending", **row})
        if len(group) >= INSERT_GROUP:
            db.session.execute(insert(BatchRow), group)
            db.session.commit()
            total += len(group)
            group = []
    if group and not errors:
        db.session.execute(insert(BatchRow), group)
        total += len(group)
    if not errors and total == 0:
        errors.append({"code": "empty_file", "message": "The input file has no requests.", "param": None,
                       "line": None})
    now = utcnow()
    if errors:
        db.session.execute(delete(BatchRow).where(BatchRow.batch_id == batch_id))
        db.session.execute(update(Batch).where(Batch.id == batch_id, Batch.status == "validating").values(
            status="failed", failed_at=now,
            errors={"object": "list", "data": errors[:MAX_LISTED_ERRORS]}))
    else:
        db.session.execute(update(Batch).where(Batch.id == batch_id, Batch.status == "validating").values(
            status="in_progress", in_progress_at=now, total=total, chunks=(total + size - 1) // size))
    db.session.commit()
    db.session.refresh(batch)
    return batch


def window(completion_window: str) -> timedelta:
    value = completion_window.strip().lower()
    if value.endswith("h") and value[:-1].isdigit():
        return timedelta(hours=int(value[:-1]))
    if value.endswith("d") and value[:-1].isdigit():
        return timedelta(days=int(value[:-1]))
    return timedelta(hours=24)
