"""Budget state for callers (spent and remaining per period) and soft-limit alerts."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from flask import current_app

from .. import metrics, webhooks
from ..auth.principal import Budget, Limits, Principal
from ..extensions import get_queue, get_redis
from . import periods
from .spend import NANO, spend_key

log = logging.getLogger(__name__)


def soft_limit_reached(*, kind: str, owner: str, budget: Budget, spent: float, now: datetime) -> None:
    """Called once per period when spend first crosses the soft limit: log, and queue the webhook."""
    metrics.BUDGET_SOFT_LIMIT.labels(scope=kind, period=budget.period).inc()
    resets = periods.period_end(budget.period, now)
    payload = {
        "event": "budget.soft_limit_reached", "scope": kind, "owner_id": owner, "period": budget.period,
        "bucket": periods.bucket_id(budget.period, now), "spent_usd": round(spent, 6),
        "soft_limit_usd": budget.soft_limit_usd, "limit_usd": budget.limit_usd,
        "resets_at": resets.isoformat() if resets else None,
    }
    log.warning("budget soft limit reached", extra={"budget_alert": payload})
    url = current_app.config.get("BUDGET_WEBHOOK_URL")
    if url:
        try:
            get_queue("default").enqueue(send_budget_webhook, payload, job_timeout=60, retry=None)
        except Exception:  # an alert must never fail the request that triggered it
            log.exception("budget webhook not queued")


def send_budget_webhook(payload: dict[str, Any]) -> int:
    """RQ job: POST the alert to ``BUDGET_WEBHOOK_URL``, signed."""
    config = current_app.config
    return webhooks.post(config["BUDGET_WEBHOOK_URL"], payload, secret=webhooks.secret_for(config),
                         allowlist=config.get("WEBHOOK_ALLOWLIST", ()), event="budget.soft_limit_reached")


def spent_nano(kind: str, owner: str, period: str, now: datetime | None = None) -> int:
    """Spend in the period containing ``now``, exactly, in integer nano-USD."""
    value = get_redis().get(spend_key(kind, owner, period, now))
    return int(value) if value is not None else 0


def spent(kind: str, owner: str, period: str, now: datetime | None = None) -> float:
    return spent_nano(kind, owner, period, now) / NANO


def budget_status(kind: str, owner: str, budget: Budget | None, now: datetime | None = None) -> dict[str, Any]:
    """Spend in every period and, when a budget is set, what is left of it and when it resets."""
    now = now or datetime.now(timezone.utc)
    keys = [spend_key(kind, owner, period, now) for period in periods.PERIODS]
    spend = {period: round(int(value or 0) / NANO, 6) for period, value in zip(periods.PERIODS, get_redis().mget(keys))}
    status: dict[str, Any] = {"spent_usd": spend, "budget": None}
    if budget is not None:
        resets = periods.period_end(budget.period, now)
        status["budget"] = {
            "limit_usd": budget.limit_usd, "period": budget.period, "soft_limit_usd": budget.soft_limit_usd,
            "spent_usd": spend[budget.period], "remaining_usd": round(max(0.0, budget.limit_usd - spend[budget.period]), 6),
            "resets_at": resets.isoformat() if resets else None,
        }
    return status


def _limits(limits: Limits) -> dict[str, int | None]:
    return {"rpm": limits.rpm, "tpm": limits.tpm, "max_concurrency": limits.max_concurrency}


def limits_and_budgets(principal: Principal, now: datetime | None = None) -> dict[str, Any]:
    """What ``GET /api/usage/limits`` answers: the caller's limits, spend and budget left."""
    out: dict[str, Any] = {
        "user": {"id": principal.user_id, "limits": _limits(principal.user_limits),
                 **budget_status("user", str(principal.user_id), principal.user_budget, now)},
        "key": None,
    }
    if principal.key_id is not None:
        out["key"] = {"id": principal.key_id, "prefix": principal.key_prefix,
                      "limits": _limits(principal.key_limits),
                      **budget_status("key", str(principal.key_id), principal.key_budget, now)}
    return out
