"""Tabular batches: upload with a live preview and cost estimate, progress, controls, results."""
from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for

from ...auth import users
from ...batches import files, links, service, tables, tabular
from ...errors import LLMGateError, NotFound, ValidationError
from ...models.batch import FINAL_STATUSES, Batch
from ..blueprint import bp, passive
from ..catalog_view import model_names
from ..session import admin_required, login_required, viewer

ACTIVE_STATUSES = ("validating", "in_progress", "finalizing", "cancelling")
STATUS_LABELS = {"validating": "loading rows", "in_progress": "running", "paused": "paused",
                 "finalizing": "writing results", "completed": "completed", "failed": "failed",
                 "expired": "expired", "cancelling": "cancelling", "cancelled": "cancelled"}
RESULT_STATUSES = ("completed", "cancelled", "expired")


def _batch(batch_id: str) -> Batch:
    """The viewer's batch (any batch for an admin); another member's answers 404 like a missing one."""
    try:
        return service.get(principal=viewer(), batch_id=batch_id)
    except NotFound:
        abort(404, description=f"There is no batch {batch_id} that you can see.")


def progress_of(batch: Batch) -> dict[str, Any]:
    p = service.progress(batch)
    done = p["completed"] + p["failed"]
    text = f"{done:,} of {p['total']:,} rows ({p['percent']:.0f}%)"
    if p["failed"]:
        text += f", {p['failed']:,} failed"
    if p["eta_seconds"]:
        text += f", about {_duration(p['eta_seconds'])} left"
    return {"done": done, "total": p["total"], "percent": p["percent"], "text": text,
            "status": batch.status, "status_label": STATUS_LABELS.get(batch.status, batch.status),
            "active": batch.status in ACTIVE_STATUSES, "cost_usd": p["cost_usd"]}


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _rows(batches: list[Batch]) -> list[dict[str, Any]]:
    return [{"batch": b, "progress": progress_of(b), "can_pause": b.status == "in_progress",
             "can_resume": b.status == "paused", "can_cancel": b.status not in FINAL_STATUSES + ("cancelling",),
             "has_results": b.kind == "tabular" and b.status in RESULT_STATUSES} for b in batches]


@bp.get("/batches")
@login_required
def batches():
    page, more = service.list_batches(principal=viewer(), limit=100)
    return render_template("batches.html", rows=_rows(page), more=more, everyone=False)


@bp.get("/admin/batches")
@admin_required
def admin_batches():
    page, more = service.list_batches(principal=viewer(), limit=100, everyone=True)
    owners = {u.id: u.email for u in users.list_users()}
    return render_template("batches.html", rows=_rows(page), more=more, everyone=True, owners=owners)


@bp.get("/batches/<batch_id>/progress.json")
@login_required
@passive
def batch_progress(batch_id: str):
    return progress_of(_batch(batch_id))


def _after_action() -> str:
    return url_for("dashboard.admin_batches") if request.form.get("back") == "admin" and g.user.is_admin \
        else url_for("dashboard.batches")


@bp.post("/batches/<batch_id>/<action>")
@login_required
def batch_action(batch_id: str, action: str):
    actions = {"cancel": service.cancel, "pause": service.pause, "resume": service.resume}
    if action not in actions:
        abort(404)
    _batch(batch_id)  # ownership first: the same 404 for others' batches as for missing ones
    try:
        batch = actions[action](principal=viewer(), batch_id=batch_id)
    except LLMGateError as error:
        flash(f"Could not {action} batch {batch_id}: {error.message}", "error")
    else:
        flash(f"Batch {batch_id}: {STATUS_LABELS.get(batch.status, batch.status)}.", "success")
    return redirect(_after_action())


@bp.get("/batches/<batch_id>/download")
@login_required
def batch_download(batch_id: str):
    """Send the browser to a fresh signed link for the result table."""
    batch = _batch(batch_id)
    fmt = request.args.get("format", "csv")
    if fmt not in tables.FORMATS:
        abort(400, description=f"Unknown format {fmt!r}; choose from {', '.join(tables.FORMATS)}.")
    if batch.kind != "tabular" or batch.status not in RESULT_STATUSES:
        abort(409, description="This batch has no results to download yet.")
    return redirect(links.download_link(batch, fmt, external=False)["url"])


# --- new batch ----------------------------------------------------------------------------------

def _spec_fields(form) -> dict[str, Any]:
    params: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, kind in (("max_tokens", int), ("temperature", float)):
        text = (form.get(name) or "").strip()
        if text:
            try:
                params[name] = kind(text)
            except ValueError:
                errors[name] = "must be a number"
    if errors:
        raise ValidationError("Some settings are not numbers.", details=errors)
    return {"model": form.get("model", ""), "template": form.get("template", ""),
            "system": form.get("system") or None, "params": params, "schema": form.get("schema") or None}


def _source(form, upload) -> dict[str, Any]:
    """Where the table comes from: a file already uploaded by the page's script, or this upload."""
    if form.get("file_id"):
        return {"file_id": form["file_id"]}
    if upload is not None and upload.filename:
        return {"stream": upload.stream, "filename": upload.filename}
    raise ValidationError("Choose a file to upload (CSV, TSV, Parquet, JSONL or Excel).", details={"file": "required"})


@bp.get("/batches/new")
@login_required
def batch_new():
    return render_template("batch_new.html", models=model_names(), form={}, errors={})


@bp.post("/batches/upload")
@login_required
def batch_upload():
    """The page's script uploads the chosen file once; previews and the submit then name it by id."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("Choose a file to upload.", details={"file": "required"})
    tables.detect_format(upload.filename)  # refuse unknown kinds before storing anything
    row = files.upload(principal=viewer(), stream=upload.stream, filename=upload.filename, purpose="user_data")
    return {"file_id": row.id, "filename": row.filename, "bytes": row.bytes}


@bp.post("/batches/preview")
@login_required
def batch_preview():
    """A dry run: the first prompts rendered and a cost estimate, as an HTML fragment (JSON)."""
    form = request.form
    try:
        spec = tabular.Spec.parse(_spec_fields(form))
        result = tabular.dry_run(principal=viewer(), spec=spec, sample=3,
                                 **_source(form, request.files.get("file")))
    except LLMGateError as error:
        return {"html": render_template("_batch_preview.html", error=error, result=None)}, 200
    return {"html": render_template("_batch_preview.html", error=None, result=result)}


@bp.post("/batches/new")
@login_required
def batch_submit():
    form = request.form
    try:
        spec = tabular.Spec.parse(_spec_fields(form))
        batch = tabular.submit(principal=viewer(), spec=spec, **_source(form, request.files.get("file")))
    except LLMGateError as error:
        flash(f"{error.message} The batch was not submitted.", "error")
        return render_template("batch_new.html", models=model_names(), form=form,
                               errors=error.details), error.status
    flash(f"Batch {batch.id} submitted: {batch.total:,} rows on {batch.model}.", "success")
    return redirect(url_for("dashboard.batches"))
