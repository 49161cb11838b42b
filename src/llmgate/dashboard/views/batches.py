"""Tabular batches: upload with a live preview and cost estimate, progress, controls, results."""
from __future__ import annotations

from flask import render_template

from ..blueprint import bp
from ..session import admin_required, login_required


@bp.get("/batches")
@login_required
def batches():
    return render_template("overview.html")


@bp.get("/admin/batches")
@admin_required
def admin_batches():
    return render_template("overview.html")
