"""The signed-in user's API keys: create (shown once, with SDK snippets), list, limits, revoke."""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for

from ...auth import keys as key_service
from ...errors import NotFound, ValidationError
from .. import budget_view, forms
from ..blueprint import bp
from ..catalog_view import model_names
from ..session import login_required, viewer


def _own_key(key_id: int):
    """The key if the viewer may manage it (their own, or any for an admin); else 404."""
    try:
        return key_service.get_key(key_id=key_id, viewer=viewer())
    except NotFound:
        abort(404, description=f"There is no API key {key_id} that you can manage.")


def _render_list(status: int = 200, **context):
    own = key_service.list_keys(user_id=g.user.id)
    spend = {key.id: budget_view.status("key", key) for key in own if key.budget_usd is not None}
    context.setdefault("errors", {})
    return render_template("keys.html", keys=own, spend=spend, models=model_names(), form=request.form,
                           **context), status


@bp.get("/keys")
@login_required
def keys():
    return _render_list()


@bp.post("/keys")
@login_required
def keys_create():
    form = request.form
    try:
        limits = forms.limits_from_form(form, clear_empty=False)
        plaintext, key = key_service.create_key(
            user=g.user, name=form.get("name") or None, models=forms.model_list(form),
            expires_in=form.get("expires_in", "").strip() or None, **limits)
    except ValidationError as error:
        return _render_list(422, errors=error.details, error_message=error.message)
    # Rendered, not redirected: the plaintext must never travel through the session cookie.
    models = model_names()
    example_model = (key.allowed_models or models or ["gpt-4o-mini"])[0]
    return render_template("key_created.html", key=key, plaintext=plaintext, model=example_model,
                           openai_base=request.host_url.rstrip("/") + "/v1",
                           anthropic_base=request.host_url.rstrip("/"))


@bp.get("/keys/<int:key_id>")
@login_required
def keys_edit(key_id: int):
    key = _own_key(key_id)
    return render_template("key_edit.html", key=key, models=_models_for(key), errors={})


@bp.post("/keys/<int:key_id>")
@login_required
def keys_update(key_id: int):
    key = _own_key(key_id)
    form = request.form
    try:
        changes = forms.limits_from_form(form, clear_empty=True)
        changes["name"] = form.get("name", "")
        changes["models"] = forms.model_list(form)
        key_service.update_key(key=key, changes=changes)
    except ValidationError as error:
        flash(error.message, "error")
        return render_template("key_edit.html", key=key, models=_models_for(key), errors=error.details), 422
    flash(f"Key {key.prefix}… updated.", "success")
    return redirect(_back())


@bp.post("/keys/<int:key_id>/revoke")
@login_required
def keys_revoke(key_id: int):
    key = _own_key(key_id)
    key_service.revoke_key(key=key)
    flash(f"Key {key.prefix}… revoked: it stops working within a second.", "success")
    return redirect(_back())


def _back() -> str:
    """Back to the admin list when the action came from there, else to the user's keys."""
    return url_for("dashboard.admin_keys") if request.form.get("back") == "admin" and g.user.is_admin \
        else url_for("dashboard.keys")


def _models_for(key) -> list[str]:
    """The catalog's models plus any the key allows that are no longer configured (kept on save)."""
    return sorted(set(model_names()) | set(key.allowed_models or []))
