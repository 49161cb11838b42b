"""Reading the dashboard's HTML forms into the typed values the services take.

Browsers send every field as text; an empty field means "no limit". Anything that does not
parse is reported per field with the same ``ValidationError`` the services raise.
"""
from __future__ import annotations

from typing import Any, Mapping

from ..errors import ValidationError
from ..models.limits import LIMIT_FIELDS

_INT_FIELDS = ("rpm", "tpm", "max_concurrency")
_MONEY_FIELDS = ("budget_usd", "budget_soft_usd")


def limits_from_form(form: Mapping[str, str], *, clear_empty: bool) -> dict[str, Any]:
    """The limit/budget fields present in ``form``; empty ones become None when ``clear_empty``
    (editing: clear the limit) and are left out otherwise (creating: nothing to say)."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in LIMIT_FIELDS:
        if field not in form:
            continue
        text = form[field].strip()
        if not text:
            if clear_empty:
                values[field] = None
            continue
        if field in _INT_FIELDS:
            try:
                values[field] = int(text)
            except ValueError:
                errors[field] = "must be a whole number"
        elif field in _MONEY_FIELDS:
            try:
                values[field] = float(text.lstrip("$"))
            except ValueError:
                errors[field] = "must be an amount in USD, like 25 or 12.50"
        else:
            values[field] = text
    if errors:
        raise ValidationError("Some limits are not valid.", details=errors)
    return values


def model_list(form: Mapping[str, Any]) -> list[str] | None:
    """The models ticked in a multi-select (``getlist``); none ticked means every model."""
    chosen = [m for m in form.getlist("models") if m] if hasattr(form, "getlist") else []
    return chosen or None
