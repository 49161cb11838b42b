"""Who is calling: the value every authenticated request and job carries.

Built from the database once and then cached (in process and in Redis), so it holds what the
hot path needs — the key's model allow-list, limits and budgets — and nothing it must query.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.rpm, self.tpm, self.max_concurrency))


@dataclass(frozen=True, slots=True)
class Budget:
    limit_usd: float
    period: str  # "day" | "week" | "month" | "total", periods start at 00:00 UTC (weeks on Monday)
    soft_limit_usd: float | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    email: str
    role: str  # "admin" | "member"
    key_id: int | None = None  # None when authenticated with a JWT access token
    key_prefix: str | None = None
    allowed_models: frozenset[str] | None = None  # None: every model
    key_limits: Limits = Limits()
    user_limits: Limits = Limits()
    key_budget: Budget | None = None
    user_budget: Budget | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_use(self, model_name: str) -> bool:
        return self.allowed_models is None or model_name in self.allowed_models
