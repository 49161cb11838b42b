"""``/api/batches``: tabular batches — a table and a prompt template in, the table with answers out.

Submit and dry-run take either a multipart upload (field ``file`` plus form fields) or a JSON
body naming an uploaded ``file_id``. Lists, progress, pause/resume/cancel and signed download
links cover OpenAI-style batches too. Results are fetched through a signed link that needs no login.
"""
from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask_restx import Namespace, Resource, fields

from ..auth.decorators import current_principal, login_required
from ..batches import downloads, links, service, tables, tabular
from ..errors import BadRequest, ValidationError
from .schemas import document_errors, error_model

ns = Namespace("batches", path="/api/batches", description="Tabular batches (and progress of every batch)")
_error = error_model(ns)
MULTIPART_SLACK = 256 * 1024

spec_fields = {
    "file_id": fields.String(description="An uploaded file (POST /v1/files, purpose user_data); or send multipart 'file'"),
    "model": fields.String(required=True, example="gpt-4o-mini"),
    "template": fields.String(required=True, example="Classify the sentiment of: {{ review }}",
                              description="Jinja2 (sandboxed) over the row's columns"),
    "system": fields.String(description="Optional system prompt (also a template)"),
    "params": fields.Raw(description="temperature, max_tokens, top_p, stop, seed …", example={"temperature": 0}),
    "schema": fields.Raw(description="JSON Schema of an object: each top-level property becomes a column"),
    "format": fields.String(enum=["csv", "tsv", "parquet", "jsonl", "xlsx"], description="Input format; default: from the file name"),
}
submit_model = ns.model("TabularBatchCreate", {
    **spec_fields,
    "webhook_url": fields.String(description="POSTed (HMAC-signed) when the batch ends"),
    "metadata": fields.Raw(description="Up to 16 string pairs"),
})
dry_run_model = ns.model("TabularBatchDryRun", {**spec_fields, "sample": fields.Integer(min=1, max=50, default=5)})
progress_model = ns.model("BatchProgress", {
    "total": fields.Integer, "completed": fields.Integer, "failed": fields.Integer, "pending": fields.Integer,
    "percent": fields.Float, "rows_per_second": fields.Float, "eta_seconds": fields.Integer,
    "input_tokens": fields.Integer, "output_tokens": fields.Integer, "cost_usd": fields.Float,
})
batch_model = ns.model("Batch", {
    "id": fields.String, "object": fields.String, "kind": fields.String(enum=["openai", "tabular"]),
    "status": fields.String, "pause_reason": fields.String, "model": fields.String, "endpoint": fields.String,
    "input_file_id": fields.String, "output_file_id": fields.String, "error_file_id": fields.String,
    "errors": fields.Raw, "metadata": fields.Raw, "created_at": fields.Integer, "completed_at": fields.Integer,
    "progress": fields.Nested(progress_model),
})
link_model = ns.model("DownloadLink", {"url": fields.String, "format": fields.String, "expires_in": fields.Integer})
batch_page = ns.model("BatchPage", {
    "data": fields.List(fields.Nested(batch_model), required=True),
    "has_more": fields.Boolean(required=True),
})
dry_run_result = ns.model("TabularBatchPreview", {
    "format": fields.String(required=True), "model": fields.String(required=True),
    "columns": fields.List(fields.String, required=True), "rows": fields.Integer(required=True),
    "prompts": fields.List(fields.Raw, required=True, description="The first rows' messages: {row, messages}"),
    "render_errors": fields.List(fields.Raw, required=True, description="{row, error} for rows the template fails on"),
    "estimate": fields.Nested(ns.model("TabularBatchEstimate", {
        "input_tokens": fields.Integer(required=True), "output_tokens_max": fields.Integer(required=True),
        "cost_usd_max": fields.Float(description="null: the model has no price in models.yaml"),
        "method": fields.String,
    }), required=True),
})


def batch_view(batch) -> dict[str, Any]:
    return {**service.batch_object(batch), "kind": batch.kind, "model": batch.model, "pause_reason": batch.pause_reason,
            "progress": service.progress(batch)}


def _inputs() -> tuple[dict[str, Any], Any]:
    """The spec fields and the uploaded file (or None), from multipart or JSON."""
    if request.mimetype == "multipart/form-data":
        request.max_content_length = current_app.config["MAX_UPLOAD_BYTES"] + MULTIPART_SLACK
        return dict(request.form), request.files.get("file")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("Send multipart/form-data with a 'file', or a JSON object with a file_id.", code="invalid_body")
    return body, None


@ns.route("")
class BatchList(Resource):
    @ns.doc(params={"after": "Cursor: a batch id", "limit": "1-100 (default 20)", "kind": "openai | tabular",
                    "all": "Admins: every user's batches"})
    @ns.response(200, "A page of batches", batch_page)
    @document_errors(ns, _error, 401, 422)
    @ns.response(404, "The batch named by after does not exist (or is not yours)", _error)
    @login_required
    def get(self):
        """My batches, newest first, with progress."""
        try:
            limit = int(request.args.get("limit", 20))
        except ValueError:
            raise ValidationError("limit must be an integer.", details={"limit": "not an integer"}) from None
        page, has_more = service.list_batches(principal=current_principal(), after=request.args.get("after"),
                                              limit=limit, kind=request.args.get("kind"),
                                              everyone=request.args.get("all") in ("1", "true"))
        return {"data": [batch_view(b) for b in page], "has_more": has_more}

    @ns.expect(submit_model, validate=False)
    @ns.response(202, "Accepted: validating, then in_progress", batch_model)
    @document_errors(ns, _error, 400, 401, 404, 415, 422)
    @ns.response(413, "The upload is larger than MAX_UPLOAD_BYTES", _error)
    @login_required
    def post(self):
        """Submit a tabular batch (multipart upload or file_id)."""
        data, upload = _inputs()
        spec = tabular.Spec.parse(data)
        batch = tabular.submit(principal=current_principal(), spec=spec, file_id=data.get("file_id"),
                               stream=upload.stream if upload else None, filename=upload.filename if upload else None,
                               webhook_url=data.get("webhook_url"), metadata=_metadata(data.get("metadata")))
        return batch_view(batch), 202


def _metadata(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        import json

        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ValidationError("metadata is not valid JSON.", details={"metadata": "invalid JSON"}) from None
    return value or None


@ns.route("/dry-run")
class DryRun(Resource):
    @ns.expect(dry_run_model, validate=False)
    @ns.response(200, "The preview and estimate", dry_run_result)
    @document_errors(ns, _error, 400, 401, 404, 415, 422)
    @ns.response(413, "The upload is larger than MAX_UPLOAD_BYTES", _error)
    @login_required
    def post(self):
        """Check the template against the columns, show the first prompts, estimate tokens and cost. Spends nothing."""
        data, upload = _inputs()
        try:
            sample = int(data.get("sample") or tabular.SAMPLE_ROWS)
        except (TypeError, ValueError):
            raise ValidationError("sample must be an integer.", details={"sample": "not an integer"}) from None
        return tabular.dry_run(principal=current_principal(), spec=tabular.Spec.parse(data),
                               file_id=data.get("file_id"), stream=upload.stream if upload else None,
                               filename=upload.filename if upload else None, sample=sample)


@ns.route("/<string:batch_id>")
class BatchItem(Resource):
    @ns.response(200, "The batch", batch_model)
    @document_errors(ns, _error, 401, 404)
    @login_required
    def get(self, batch_id: str):
        """One batch with its progress (done, failed, rows/s, ETA)."""
        return batch_view(service.get(principal=current_principal(), batch_id=batch_id))


def _action(name: str):
    @ns.route(f"/<string:batch_id>/{name}")
    class Action(Resource):
        @ns.response(200, f"The batch after {name}", batch_model)
        @document_errors(ns, _error, 401, 404, 409)
        @login_required
        def post(self, batch_id: str):
            return batch_view(getattr(service, name)(principal=current_principal(), batch_id=batch_id))

    Action.post.__doc__ = {"cancel": "Cancel: stops within seconds; finished rows are kept.",
                           "pause": "Pause: running rows finish, no new ones start.",
                           "resume": "Resume a paused batch."}[name]
    Action.__name__ = f"Batch{name.title()}"
    return Action


for _name in ("cancel", "pause", "resume"):
    _action(_name)


@ns.route("/download/<string:token>", endpoint="batches_download")
@ns.param("token", "The signed token in the url from GET /api/batches/{batch_id}/download")
class SignedDownload(Resource):
    @ns.doc(security=[])
    @ns.produces([*sorted(set(tables.MEDIA_TYPES.values())), "application/json"])  # JSON: the errors
    @ns.response(200, "The result table, as an attachment")
    @ns.response(403, "The link is not valid or has expired", _error)
    @ns.response(404, "The batch is gone, or has no result table", _error)
    def get(self, token: str):
        """Download a result table through a signed link: no login, the link is the permission."""
        return downloads.send_result(token)


@ns.route("/<string:batch_id>/download")
class DownloadLink(Resource):
    @ns.doc(params={"format": "csv (default), tsv, parquet, jsonl or xlsx"})
    @ns.response(200, "A signed link, valid without login until it expires", link_model)
    @document_errors(ns, _error, 401, 404, 409, 422)
    @login_required
    def get(self, batch_id: str):
        """A signed, time-limited link to the result table."""
        batch = service.get(principal=current_principal(), batch_id=batch_id)
        try:
            fmt = tables.detect_format(None, request.args.get("format") or "csv")
        except tables.TableError as error:  # a 400 for an uploaded file; here a query parameter is wrong
            raise ValidationError(error.message, details={"format": f"choose from {', '.join(tables.FORMATS)}"}) from None
        if batch.kind != "tabular":
            raise ValidationError("OpenAI-style batches have output files: GET /v1/files/<id>/content.",
                                  details={"batch_id": "not a tabular batch"})
        if batch.status not in ("completed", "cancelled", "expired"):
            from ..errors import Conflict

            raise Conflict(f"The batch is {batch.status}; results are ready when it ends.", code="result_not_ready")
        return links.download_link(batch, fmt)
