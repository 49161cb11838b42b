"""The dashboard blueprint object, shared by the view modules that add pages to it."""
from __future__ import annotations

from typing import Any, Callable

from flask import Blueprint

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="templates",
               static_folder="static", static_url_path="/static")


def passive(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a view (progress polling) that reads the session without counting as activity."""
    view.dashboard_passive = True  # type: ignore[attr-defined]
    return view
