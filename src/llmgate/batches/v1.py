"""``/v1/files`` and ``/v1/batches``: OpenAI's Files and Batch APIs, for the official SDKs.

Views parse, call one service, serialise; errors come out OpenAI-shaped from the app's handler.
"""
from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request, send_file

from ..auth.v1 import authenticate
from ..errors import BadRequest, ValidationError
from . import files, service

bp = Blueprint("batches_v1", __name__, url_prefix="/v1")
MULTIPART_SLACK = 64 * 1024  # form boundaries and the purpose field, around the file itself


@bp.before_request
def _authenticate() -> None:
    g.principal = authenticate(request)


def _json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_body")
    return body


def _limit(default: int, ceiling: int) -> int:
    try:
        value = int(request.args.get("limit", default))
    except ValueError:
        raise ValidationError("limit must be an integer.", details={"limit": "not an integer"}, param="limit") from None
    if not 1 <= value <= ceiling:
        raise ValidationError(f"limit must be between 1 and {ceiling}.", details={"limit": "out of range"}, param="limit")
    return value


# --- files --------------------------------------------------------------------------------------------

@bp.post("/files")
def upload_file():
    # Uploads may be far larger than ordinary requests (MAX_CONTENT_LENGTH): raise the ceiling for
    # this request only, before the body is read. Werkzeug spools the file part to disk, not memory.
    request.max_content_length = current_app.config["MAX_UPLOAD_BYTES"] + MULTIPART_SLACK
    upload = request.files.get("file")
    if upload is None:
        raise BadRequest("Send the file as multipart/form-data field 'file'.", code="missing_file", param="file")
    row = files.upload(principal=g.principal, stream=upload.stream, filename=upload.filename,
                       purpose=request.form.get("purpose"))
    return jsonify(files.file_object(row))


@bp.get("/files")
def list_files():
    rows, has_more = files.list_files(principal=g.principal, purpose=request.args.get("purpose"),
                                      limit=_limit(10_000, 10_000), after=request.args.get("after"),
                                      order=request.args.get("order", "desc"))
    data = [files.file_object(r) for r in rows]
    return jsonify({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None, "has_more": has_more})


@bp.get("/files/<file_id>")
def retrieve_file(file_id: str):
    return jsonify(files.file_object(files.get(principal=g.principal, file_id=file_id)))


@bp.get("/files/<file_id>/content")
def file_content(file_id: str):
    row, path = files.content_path(principal=g.principal, file_id=file_id)
    return send_file(path, mimetype="application/octet-stream", as_attachment=True, download_name=row.filename,
                     conditional=False, etag=False)


@bp.delete("/files/<file_id>")
def delete_file(file_id: str):
    row = files.delete(principal=g.principal, file_id=file_id)
    return jsonify({"id": row.id, "object": "file", "deleted": True})


# --- batches ------------------------------------------------------------------------------------------

@bp.post("/batches")
def create_batch():
    body = _json_body()
    batch = service.create_openai_batch(
        principal=g.principal, input_file_id=body.get("input_file_id"), endpoint=body.get("endpoint"),
        completion_window=body.get("completion_window", "24h"), metadata=body.get("metadata"),
        webhook_url=body.get("webhook_url"))
    return jsonify(service.batch_object(batch))


@bp.get("/batches")
def list_batches():
    page, has_more = service.list_batches(principal=g.principal, after=request.args.get("after"),
                                          limit=_limit(20, 100))
    data = [service.batch_object(b) for b in page]
    return jsonify({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None, "has_more": has_more})


@bp.get("/batches/<batch_id>")
def retrieve_batch(batch_id: str):
    return jsonify(service.batch_object(service.get(principal=g.principal, batch_id=batch_id)))


@bp.post("/batches/<batch_id>/cancel")
def cancel_batch(batch_id: str):
    return jsonify(service.batch_object(service.cancel(principal=g.principal, batch_id=batch_id)))
