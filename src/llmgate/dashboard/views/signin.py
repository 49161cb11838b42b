"""Sign in and sign out, with the API's accounts, login throttling and deactivation rules."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for

from ...auth import users
from ...errors import RateLimited, Unauthorized, ValidationError
from .. import session as dashboard_session
from ..blueprint import bp


@bp.get("/login")
def sign_in():
    if g.get("user") is not None:
        return redirect(dashboard_session.safe_next(request.args.get("next")))
    return render_template("signin.html", next_url=request.args.get("next"), email="")


@bp.post("/login")
def sign_in_submit():
    email = request.form.get("email", "")
    next_url = request.args.get("next")
    try:
        user = users.authenticate_password(email=email, password=request.form.get("password", ""),
                                           client_address=request.remote_addr)
    except RateLimited as error:
        flash(error.message, "error")
        return render_template("signin.html", next_url=next_url, email=email), 429, error.headers
    except (Unauthorized, ValidationError) as error:
        # One message whatever was wrong (unknown email, wrong password, deactivated account).
        flash(error.message, "error")
        return render_template("signin.html", next_url=next_url, email=email), 401
    dashboard_session.sign_in(user)
    return redirect(dashboard_session.safe_next(next_url))


@bp.post("/logout")
def sign_out():
    dashboard_session.sign_out()
    flash("You are signed out.", "success")
    return redirect(url_for("dashboard.sign_in"))
