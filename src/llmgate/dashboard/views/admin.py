"""Administration: every user (create, role, deactivate, limits and budgets), every key, every batch."""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for

from ...auth import keys as key_service
from ...auth import users as user_service
from ...errors import Conflict, NotFound, ValidationError
from .. import forms
from ..blueprint import bp
from ..session import admin_required


@bp.get("/admin")
@admin_required
def admin():
    return redirect(url_for("dashboard.admin_users"))


@bp.get("/admin/users")
@admin_required
def admin_users():
    return render_template("admin_users.html", users=user_service.list_users(), form={}, errors={})


@bp.post("/admin/users")
@admin_required
def admin_users_create():
    form = request.form
    try:
        limits = forms.limits_from_form(form, clear_empty=False)
        user = user_service.create_user(email=form.get("email", ""), password=form.get("password", ""),
                                        role=form.get("role", "member"), **limits)
    except (ValidationError, Conflict) as error:
        flash(f"{error.message} The user was not created.", "error")
        return render_template("admin_users.html", users=user_service.list_users(), form=form,
                               errors=error.details), error.status
    flash(f"User {user.email} created as {user.role}.", "success")
    return redirect(url_for("dashboard.admin_users"))


def _user(user_id: int):
    try:
        return user_service.get_user(user_id=user_id)
    except NotFound:
        abort(404, description=f"There is no user {user_id}.")


@bp.get("/admin/users/<int:user_id>")
@admin_required
def admin_user_edit(user_id: int):
    user = _user(user_id)
    return render_template("admin_user_edit.html", user=user, errors={},
                           keys=key_service.list_keys(user_id=user.id))


@bp.post("/admin/users/<int:user_id>")
@admin_required
def admin_user_update(user_id: int):
    user = _user(user_id)
    form = request.form
    try:
        changes = forms.limits_from_form(form, clear_empty=True)
        changes["role"] = form.get("role", user.role)
        changes["active"] = form.get("active") == "on"
        if form.get("password"):
            changes["password"] = form["password"]
        if user.id == g.user.id and (changes["role"] != "admin" or not changes["active"]):
            raise ValidationError("You cannot remove your own administrator role or deactivate yourself.",
                                  details={"role": "ask another administrator"})
        user_service.update_user(user=user, changes=changes)
    except (ValidationError, Conflict) as error:
        flash(f"{error.message} Nothing was changed.", "error")
        return render_template("admin_user_edit.html", user=user, errors=error.details,
                               keys=key_service.list_keys(user_id=user.id)), error.status
    flash(f"User {user.email} updated.", "success")
    return redirect(url_for("dashboard.admin_users"))


@bp.get("/admin/keys")
@admin_required
def admin_keys():
    everyone = {u.id: u for u in user_service.list_users()}
    return render_template("admin_keys.html", keys=key_service.list_keys(), owners=everyone)
