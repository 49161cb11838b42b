"""Rate-limit and budget columns carried by both users and API keys.

The auth part only stores and edits them; the accounting part enforces them (see
``llmgate.accounting.gate``). They travel to the hot path inside the cached ``Principal``.
"""
from __future__ import annotations

from sqlalchemy import Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

BUDGET_PERIODS = ("day", "week", "month", "total")
LIMIT_FIELDS = ("rpm", "tpm", "max_concurrency", "budget_usd", "budget_period", "budget_soft_usd")


class LimitsMixin:
    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_concurrency: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Floats on the Python side; accounting converts budgets to integer nano-USD to compare with spend.
    budget_usd: Mapped[float | None] = mapped_column(Numeric(14, 6, asdecimal=False), nullable=True)
    budget_period: Mapped[str | None] = mapped_column(String(8), nullable=True)
    budget_soft_usd: Mapped[float | None] = mapped_column(Numeric(14, 6, asdecimal=False), nullable=True)
