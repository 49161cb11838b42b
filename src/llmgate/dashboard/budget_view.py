"""Spend against budgets for the dashboard, read from the same Redis counters the gate enforces."""
from __future__ import annotations

from typing import Any

from ..accounting import budgets
from ..auth.principal import Budget


def budget_of(row: Any) -> Budget | None:
    """A user's or key's budget as the gate sees it (a budget without a period is monthly)."""
    if row.budget_usd is None:
        return None
    return Budget(limit_usd=float(row.budget_usd), period=row.budget_period or "month",
                  soft_limit_usd=None if row.budget_soft_usd is None else float(row.budget_soft_usd))


def status(kind: str, row: Any) -> dict[str, Any] | None:
    """``{"limit_usd", "period", "spent_usd", "remaining_usd", "resets_at", "state"}`` or None
    without a budget; ``state`` is ``over`` (calls refused), ``warning`` (soft limit) or ``ok``."""
    budget = budget_of(row)
    if budget is None:
        return None
    info = budgets.budget_status(kind, str(row.id), budget)["budget"]
    if info["spent_usd"] >= budget.limit_usd:
        info["state"] = "over"
    elif budget.soft_limit_usd is not None and info["spent_usd"] >= budget.soft_limit_usd:
        info["state"] = "warning"
    else:
        info["state"] = "ok"
    return info
