"""Validation of the limit and budget fields that users and API keys share."""
from __future__ import annotations

from typing import Any, Mapping

from ..errors import ValidationError
from ..models.limits import BUDGET_PERIODS, LIMIT_FIELDS

_INT_FIELDS = ("rpm", "tpm", "max_concurrency")
_MONEY_FIELDS = ("budget_usd", "budget_soft_usd")
MAX_LIMIT = 2**31 - 1
MAX_BUDGET_USD = 10**8


def clean_limits(values: Mapping[str, Any]) -> dict[str, Any]:
    """The limit/budget items of ``values`` checked and normalised; unrelated keys are ignored."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in LIMIT_FIELDS:
        if field not in values:
            continue
        value = values[field]
        if value is None:
            cleaned[field] = None
        elif field in _INT_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_LIMIT:
                errors[field] = f"must be a positive integer up to {MAX_LIMIT}, or null"
            else:
                cleaned[field] = value
        elif field in _MONEY_FIELDS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_BUDGET_USD:
                errors[field] = f"must be a number from 0 to {MAX_BUDGET_USD}, or null"
            else:
                cleaned[field] = float(value)
        elif field == "budget_period":
            if value not in BUDGET_PERIODS:
                errors[field] = f"must be one of {', '.join(BUDGET_PERIODS)}, or null"
            else:
                cleaned[field] = value
    if errors:
        raise ValidationError("Invalid limits.", details=errors)
    return cleaned


def apply_limits(row: Any, values: Mapping[str, Any]) -> None:
    """Set the cleaned limit fields on ``row``, then check the budget fields fit together."""
    for field, value in clean_limits(values).items():
        setattr(row, field, value)
    if row.budget_usd is not None and row.budget_period is None:
        row.budget_period = "month"
    if row.budget_soft_usd is not None and row.budget_usd is not None and row.budget_soft_usd > row.budget_usd:
        raise ValidationError("Invalid limits.", details={"budget_soft_usd": "must not exceed budget_usd"})
