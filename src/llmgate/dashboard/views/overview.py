"""The landing page: requests, tokens, cost and error rate for the last day and month."""
from __future__ import annotations

from flask import render_template

from ..blueprint import bp
from ..session import login_required


@bp.get("/")
@login_required
def overview():
    return render_template("overview.html")
