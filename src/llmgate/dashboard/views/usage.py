"""Usage reports: chart and table by day, model or key, in the viewer's time zone, with CSV."""
from __future__ import annotations

from flask import render_template

from ..blueprint import bp
from ..session import login_required


@bp.get("/usage")
@login_required
def usage():
    return render_template("overview.html")
