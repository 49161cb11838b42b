"""What a finished batch hands back, built by streaming its rows in pages.

OpenAI batches: an output JSONL (successful lines) and an error JSONL (failed lines, and lines
never run because the batch was cancelled or expired), matched by ``custom_id``, as OpenAI writes
them. Tabular batches: the input table plus answer columns, in any of the table formats; CSV is
written when the batch ends and other formats on first download (then kept).
"""
from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select

from ..extensions import db
from ..models.batch import Batch, BatchRow
from . import files, storage, tables

PAGE_ROWS = 2000
EXTRA_COLUMNS = ("input_tokens", "output_tokens", "cost", "error")
UNFINISHED = {"cancelled": ("batch_cancelled", "This request was not run: the batch was cancelled."),
              "expired": ("batch_expired", "This request could not be executed before the completion window expired.")}


def iter_rows(batch_id: str) -> Iterator[list[BatchRow]]:
    """Pages of rows in input order (keyset pagination: constant cost per page, bounded memory)."""
    after = -1
    while True:
        page = list(db.session.execute(
            select(BatchRow).where(BatchRow.batch_id == batch_id, BatchRow.position > after)
            .order_by(BatchRow.position).limit(PAGE_ROWS)).scalars())
        if not page:
            return
        yield page
        after = page[-1].position
        for row in page:  # keep the session's identity map from growing with the batch
            db.session.expunge(row)


# --- OpenAI -------------------------------------------------------------------------------------------

def output_line(row: BatchRow) -> dict[str, Any]:
    result = row.result or {}
    return {"id": "batch_req_" + secrets.token_hex(12), "custom_id": row.custom_id,
            "response": {"status_code": result.get("status_code", 200), "request_id": result.get("request_id"),
                         "body": result.get("body")}, "error": None}


def error_line(row: BatchRow, ending: str) -> dict[str, Any]:
    if row.status == "pending":
        code, message = UNFINISHED.get(ending, UNFINISHED["cancelled"])
        return {"id": "batch_req_" + secrets.token_hex(12), "custom_id": row.custom_id, "response": None,
                "error": {"code": code, "message": message}}
    return output_line(row)


def write_openai_outputs(batch: Batch, ending: str) -> tuple[str | None, str | None]:
    """Output and error files for ``batch``; ids, None where there is nothing to put in one."""
    with storage.PendingFile() as out, storage.PendingFile() as err:
        counts = {"out": 0, "err": 0}
        with open(out.path, "w", encoding="utf-8") as out_handle, open(err.path, "w", encoding="utf-8") as err_handle:
            for page in iter_rows(batch.id):
                for row in page:
                    if row.status == "done":
                        out_handle.write(json.dumps(output_line(row)) + "\n")
                        counts["out"] += 1
                    else:
                        err_handle.write(json.dumps(error_line(row, ending)) + "\n")
                        counts["err"] += 1
        out.size, err.size = out.path.stat().st_size, err.path.stat().st_size
        output = files.record(user_id=batch.user_id, pending=out, filename=f"{batch.id}_output.jsonl",
                              purpose="batch_output") if counts["out"] else None
        error = files.record(user_id=batch.user_id, pending=err, filename=f"{batch.id}_error.jsonl",
                             purpose="batch_output") if counts["err"] else None
        db.session.flush()
        return (output.id if output else None), (error.id if error else None)


# --- tabular ------------------------------------------------------------------------------------------

def answer_columns(batch: Batch) -> list[str]:
    options = batch.options or {}
    inputs = options.get("columns") or []
    schema = options.get("schema")
    wanted = list((schema or {}).get("properties") or {}) if schema else ["answer"]
    if schema and not wanted:
        wanted = ["answer"]
    return [f"answer_{c}" if c in inputs or c in EXTRA_COLUMNS else c for c in wanted]


def result_columns(batch: Batch) -> list[str]:
    return list((batch.options or {}).get("columns") or []) + answer_columns(batch) + list(EXTRA_COLUMNS)


def table_row(batch: Batch, row: BatchRow, answer_names: list[str], raw_names: list[str], ending: str) -> dict[str, Any]:
    cells = dict(row.input)
    result = row.result or {}
    fields = result.get("fields")
    if fields is not None:
        for name, raw in zip(answer_names, raw_names):
            cells[name] = fields.get(raw)
    elif "answer" in result:
        cells[answer_names[0]] = result.get("answer")
    cells["input_tokens"] = result.get("input_tokens")
    cells["output_tokens"] = result.get("output_tokens")
    cells["cost"] = result.get("cost")
    cells["error"] = result.get("error") if row.status != "pending" else f"not run: batch {ending}"
    return cells


def write_table(batch: Batch, fmt: str, ending: str | None = None) -> str:
    """Write the result table in ``fmt`` and record it as a file of the owner's; its id."""
    schema = (batch.options or {}).get("schema")
    raw_names = list((schema or {}).get("properties") or {}) or ["answer"]
    answer_names = answer_columns(batch)
    ending = ending or batch.status
    with storage.PendingFile() as pending:
        writer = tables.TableWriter(pending.path, fmt, result_columns(batch), int_columns=("input_tokens", "output_tokens"))
        try:
            for page in iter_rows(batch.id):
                writer.write([table_row(batch, row, answer_names, raw_names, ending) for row in page])
        finally:
            writer.close()
        pending.size = pending.path.stat().st_size
        stem = (batch.options or {}).get("filename_stem") or batch.id
        row = files.record(user_id=batch.user_id, pending=pending, filename=f"{stem}_results.{fmt}",
                           purpose="batch_output")
        db.session.flush()
        return row.id
