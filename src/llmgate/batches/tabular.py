"""Tabular batches: a table, a prompt template over its columns, a model → the table with answers.

``dry_run`` checks everything and spends nothing: the template against the columns (unknown
names → 422 naming them), the first rendered prompts, and an estimate of tokens and cost.
Token estimate: characters / 4 for the prompt (OpenAI's rule of thumb for English text) plus
``max_tokens`` (or ``DEFAULT_OUTPUT_TOKENS``) for the answer, per row.
``submit`` stores the batch; a worker then loads the rows and runs them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import jsonschema

from ..auth.principal import Principal
from ..errors import NotFound, ValidationError
from ..extensions import db
from ..gateway.catalog import get_catalog
from ..models.base import utcnow
from ..models.batch import Batch
from . import files, ingest, results, storage, tables, templates, webhook
from .rows import CHAT, tabular_body
from .service import check_metadata, start

PARAMS = {"temperature": (int, float), "top_p": (int, float), "max_tokens": int, "max_completion_tokens": int,
          "stop": (str, list), "seed": int, "presence_penalty": (int, float), "frequency_penalty": (int, float),
          "reasoning_effort": str}
DEFAULT_OUTPUT_TOKENS = 256
SAMPLE_ROWS = 5
SCAN_CHUNK_ROWS = 5000


@dataclass
class Spec:
    model: str
    template: str
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] | None = None
    format: str | None = None  # of the input; guessed from the file name when None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> "Spec":
        """From a JSON body or form fields (``params`` / ``schema`` may arrive as JSON text)."""
        def as_json(name: str) -> Any:
            value = data.get(name)
            if isinstance(value, str) and value.strip():
                try:
                    return json.loads(value)
                except json.JSONDecodeError as error:
                    raise ValidationError(f"{name} is not valid JSON: {error.msg}.", details={name: "invalid JSON"})
            return value or None
        model, template = data.get("model"), data.get("template")
        if not isinstance(model, str) or not model:
            raise ValidationError("model is required.", details={"model": "required"})
        if not isinstance(template, str) or not template.strip():
            raise ValidationError("template is required.", details={"template": "required"})
        system = data.get("system") or None
        if system is not None and not isinstance(system, str):
            raise ValidationError("system must be text.", details={"system": "not a string"})
        return cls(model=model, template=template, system=system, params=as_json("params") or {},
                   schema=as_json("schema"), format=data.get("format") or None)


def check_spec(spec: Spec, principal: Principal) -> None:
    if spec.model not in get_catalog() or not principal.may_use(spec.model):
        raise ValidationError(f"The model `{spec.model}` does not exist or you do not have access to it.",
                              details={"model": "unknown model"})
    if not isinstance(spec.params, dict):
        raise ValidationError("params must be an object.", details={"params": "not an object"})
    for name, value in spec.params.items():
        kind = PARAMS.get(name)
        if kind is None:
            raise ValidationError(f"Unknown parameter {name!r}; allowed: {', '.join(PARAMS)}.",
                                  details={"params": f"unknown parameter {name}"})
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValidationError(f"Parameter {name!r} has the wrong type.", details={"params": f"{name}: wrong type"})
    if spec.schema is not None:
        if not isinstance(spec.schema, dict):
            raise ValidationError("schema must be a JSON Schema object.", details={"schema": "not an object"})
        try:
            jsonschema.validators.validator_for(spec.schema).check_schema(spec.schema)
        except jsonschema.SchemaError as error:
            raise ValidationError(f"schema is not a valid JSON Schema: {error.message}",
                                  details={"schema": error.message}) from None
        if spec.schema.get("type") != "object" or not isinstance(spec.schema.get("properties"), dict) \
                or not spec.schema["properties"]:
            raise ValidationError("schema must describe an object with properties: each becomes a column.",
                                  details={"schema": "type must be object, with properties"})
    templates.compile_template(spec.template)
    if spec.system:
        templates.compile_template(spec.system, field="system")


@dataclass
class Scan:
    columns: list[str]
    rows: int
    sample: list[dict[str, Any]]


def scan(path: Path, fmt: str, sample_rows: int = SAMPLE_ROWS) -> Scan:
    """Read the whole file in chunks (so a broken line anywhere is a 4xx now, not a surprise later)."""
    columns: list[str] = []
    count = 0
    sample: list[dict[str, Any]] = []
    for columns, rows in tables.iter_chunks(path, fmt, chunk_rows=SCAN_CHUNK_ROWS):
        if len(sample) < sample_rows:
            sample.extend(rows[: sample_rows - len(sample)])
        count += len(rows)
    if count == 0:
        raise tables.TableError("The file has a header but no rows.", param="file")
    return Scan(columns, count, sample)


def _check_template(spec: Spec, found: Scan) -> None:
    templates.check_against_columns(spec.template, found.columns)
    if spec.system:
        templates.check_against_columns(spec.system, found.columns, field="system")


def estimate(spec: Spec, found: Scan, sample_count: int) -> dict[str, Any]:
    prompts = []
    errors = []
    for index, cells in enumerate(found.sample):
        try:
            body = tabular_body({"template": spec.template, "system": spec.system, "params": spec.params,
                                 "schema": spec.schema}, cells, spec.model)
        except templates.RenderError as error:
            errors.append({"row": index, "error": str(error)})
            continue
        prompts.append({"row": index, "messages": body["messages"]})
    chars = [sum(len(m["content"]) for m in p["messages"]) + (len(json.dumps(spec.schema)) if spec.schema else 0)
             for p in prompts]
    per_row_in = (sum(chars) / len(chars) / 4) if chars else 0
    per_row_out = spec.params.get("max_tokens") or spec.params.get("max_completion_tokens") or DEFAULT_OUTPUT_TOKENS
    tokens_in, tokens_out = round(per_row_in * found.rows), int(per_row_out) * found.rows
    price = get_catalog().price(spec.model)
    cost = None
    if price is not None and (price.input_per_mtok is not None or price.output_per_mtok is not None):
        cost = round(tokens_in * (price.input_per_mtok or 0) / 1e6 + tokens_out * (price.output_per_mtok or 0) / 1e6, 6)
    return {"columns": found.columns, "rows": found.rows, "prompts": prompts[:sample_count], "render_errors": errors,
            "estimate": {"input_tokens": tokens_in, "output_tokens_max": tokens_out, "cost_usd_max": cost,
                         "method": "input: characters/4 of the sample's prompts x rows; output: max_tokens "
                                   f"(default {DEFAULT_OUTPUT_TOKENS}) x rows; price from models.yaml"}}


def _stored_source(principal: Principal, file_id: str) -> tuple[Path, str]:
    row = files.get(principal=principal, file_id=file_id)
    return storage.path_of(row.storage_name), row.filename


def dry_run(*, principal: Principal, spec: Spec, file_id: str | None = None, stream: BinaryIO | None = None,
            filename: str | None = None, sample: int = SAMPLE_ROWS) -> dict[str, Any]:
    """Validate and preview; nothing is stored (an uploaded file is discarded afterwards)."""
    check_spec(spec, principal)
    sample = max(1, min(int(sample), 50))
    if stream is not None:
        fmt = tables.detect_format(filename, spec.format)
        with storage.PendingFile() as pending:
            pending.fill_from(stream)
            found = scan(pending.path, fmt, sample)
    else:
        path, stored_name = _stored_source(principal, _require_file_id(file_id))
        fmt = tables.detect_format(stored_name, spec.format)
        found = scan(path, fmt, sample)
    _check_template(spec, found)
    return {"format": fmt, **estimate(spec, found, sample), "model": spec.model}


def _require_file_id(file_id: Any) -> str:
    if not isinstance(file_id, str) or not file_id:
        raise ValidationError("Send a file (multipart field 'file') or a file_id.", details={"file": "required"})
    return file_id


def submit(*, principal: Principal, spec: Spec, file_id: str | None = None, stream: BinaryIO | None = None,
           filename: str | None = None, webhook_url: str | None = None, metadata: Any = None) -> Batch:
    """Validate like ``dry_run``, store the batch (and the upload, if any) and queue it."""
    check_spec(spec, principal)
    hook = webhook.check(webhook_url)
    meta = check_metadata(metadata)
    now = utcnow()
    if stream is not None:
        fmt = tables.detect_format(filename, spec.format)
        with storage.PendingFile() as pending:
            pending.fill_from(stream)
            found = scan(pending.path, fmt, 1)
            _check_template(spec, found)
            try:
                source = files.record(user_id=principal.user_id, pending=pending, filename=filename or f"upload.{fmt}",
                                      purpose="user_data")
                batch = _new_batch(principal, spec, fmt, found, source.id, source.filename, hook, meta, now)
                db.session.add(batch)
                db.session.commit()
            except Exception:
                db.session.rollback()
                storage.remove(pending.storage_name)
                raise
        return start(batch)
    path, stored_name = _stored_source(principal, _require_file_id(file_id))
    fmt = tables.detect_format(stored_name, spec.format)
    found = scan(path, fmt, 1)
    _check_template(spec, found)
    return start(_new_batch(principal, spec, fmt, found, file_id, stored_name, hook, meta, now))


def _new_batch(principal, spec, fmt, found, file_id, filename, hook, meta, now) -> Batch:
    return Batch(kind="tabular", user_id=principal.user_id, key_id=principal.key_id, endpoint=CHAT, model=spec.model,
                 input_file_id=file_id, completion_window="24h", status="validating", meta=meta, webhook_url=hook,
                 created_at=now, expires_at=now + ingest.window(_window()), total=found.rows,
                 options={"template": spec.template, "system": spec.system, "params": spec.params,
                          "schema": spec.schema, "format": fmt, "columns": found.columns,
                          "filename_stem": Path(filename or "upload").stem[:100]})


def _window() -> str:
    from flask import current_app

    return str(current_app.config.get("BATCH_TABULAR_WINDOW", "7d"))


def result_file(*, batch: Batch, fmt: str) -> str:
    """The id of the result table in ``fmt``, written on first request and kept."""
    if batch.kind != "tabular" or batch.status not in ("completed", "cancelled", "expired"):
        raise NotFound("This batch has no result table (yet).", code="result_not_ready")
    fmt = tables.detect_format(None, fmt)
    made = dict((batch.options or {}).get("result_files") or {})
    if fmt == "csv" and batch.output_file_id:
        return batch.output_file_id
    if fmt in made:
        return made[fmt]
    file_id = results.write_table(batch, fmt)
    batch.options = {**(batch.options or {}), "result_files": {**made, fmt: file_id}}
    db.session.commit()
    return file_id
