"""Every configured model and deployment: provider, price, limits and live health."""
from __future__ import annotations

from flask import current_app, render_template

from ...gateway import health
from ..blueprint import bp
from ..catalog_view import deployment_rows
from ..session import login_required


@bp.get("/models")
@login_required
def models():
    # Health counters are this process's (each server process balances its own calls); the
    # cool-downs are shared through Redis, so "cooling down" is the same everywhere.
    states = {row["deployment"]: row for row in health.snapshot()} \
        if health.EXTENSION_KEY in current_app.extensions else {}
    return render_template("models.html", rows=deployment_rows(states), health_known=bool(states))
