"""The spend counters in Redis: their keys, their time to live, and which of them have a budget.

Spend is integer nano-USD (``INCRBY``), one counter per owner (key, user) and period (day,
week, month, total) — see docs/accounting.md. ``admit`` reads the budgeted ones, ``settle``
adds to all of them; what they need for one principal on one UTC day is built once here and
cached (only strings and numbers).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any

from .. import metrics
from ..auth.principal import Budget, Principal
from . import periods

SPEND_PREFIX = "llmgate:spend-nusd"  # integer nano-USD; the old float counters were "llmgate:spend"
NANO = 10**9
_NANO = Decimal(NANO)


def spend_key(kind: str, owner: str, period: str, now: datetime | None = None) -> str:
    """The Redis counter of an owner's spend in the period containing ``now``, in integer nano-USD."""
    return f"{SPEND_PREFIX}:{kind}:{owner}:{periods.bucket_id(period, now)}"


def to_nano(usd: float | Decimal | str) -> int:
    """USD to integer nano-USD, exactly for any decimal with at most 9 places."""
    return int((Decimal(str(usd)) * _NANO).to_integral_value())



@dataclass(frozen=True, slots=True)
class Watched:
    """A spend counter that has a budget: its new value feeds the gauge and the soft-limit alert."""

    index: int  # position among the spend counters
    kind: str
    owner: str
    budget: Budget
    limit_nano: int
    remaining: Any  # the llmgate_budget_remaining_usd child (labels() resolved once)


@dataclass(frozen=True, slots=True)
class Targets:
    """settle's spend keys and arguments for one principal on one UTC day (cached: only strings)."""

    keys: tuple[str, ...]  # the spend counters, then one alert flag per watched counter
    count: int  # how many spend counters
    expire_at: tuple[int, ...]  # per counter: unix time it may expire (-1: never)
    watched: tuple[Watched, ...]
    watch_args: tuple[int, ...]  # per watched: 1-based counter index, soft limit nano-USD (-1: none)


@lru_cache(maxsize=8)
def _buckets(day: date) -> tuple[tuple[str, str, int], ...]:
    """(period, bucket id, unix time the counter may expire) for every period, for one UTC day:
    settle computes no calendar arithmetic, only string joins."""
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc)
    out = []
    for period in periods.PERIODS:
        end = periods.period_end(period, noon)
        expire_at = -1 if end is None else int(end.timestamp()) + 86400  # a day of grace for late settles
        out.append((period, periods.bucket_id(period, noon), expire_at))
    return tuple(out)


def targets_for(p: Principal, day: date) -> Targets:
    """Every spend counter settle adds to, and those with a budget (the gauge and alerts need them).

    Spend is kept for every period, budget or not, so a budget set mid-period starts from the
    truth and ``/api/usage/limits`` shows every period; a counter's TTL is set once, when it is
    created, so the extra periods cost one INCRBY each.
    """
    return _targets(p.key_id, p.user_id, p.key_budget, p.user_budget, day)


@lru_cache(maxsize=4096)
def _targets(key_id: int | None, user_id: int, key_budget: Budget | None, user_budget: Budget | None,
             day: date) -> Targets:
    owners = [("user", str(user_id), user_budget)]
    if key_id is not None:
        owners.insert(0, ("key", str(key_id), key_budget))
    keys: list[str] = []
    flags: list[str] = []
    expire_at: list[int] = []
    watched: list[Watched] = []
    watch_args: list[int] = []
    for kind, owner, budget in owners:
        for period, bucket, at in _buckets(day):
            if budget is not None and budget.period == period:
                watched.append(Watched(len(keys), kind, owner, budget, to_nano(budget.limit_usd),
                                        metrics.BUDGET_REMAINING.labels(scope=kind, owner=owner, period=period)))
                flags.append(f"llmgate:spend-alert:{kind}:{owner}:{bucket}")
                watch_args += [len(keys) + 1, -1 if budget.soft_limit_usd is None else to_nano(budget.soft_limit_usd)]
            keys.append(f"{SPEND_PREFIX}:{kind}:{owner}:{bucket}")
            expire_at.append(at)
    return Targets((*keys, *flags), len(keys), tuple(expire_at), tuple(watched), tuple(watch_args))
