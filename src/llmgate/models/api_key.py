"""API keys: what SDK clients send to /v1. Only a hash of the key is stored."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import TimestampMixin, UTCDateTime, utcnow
from .limits import LimitsMixin

if TYPE_CHECKING:
    from .user import User


class ApiKey(TimestampMixin, LimitsMixin, db.Model):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("budget_period IN ('day', 'week', 'month', 'total')", name="budget_period"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    # The first characters of the key (``sk-lg-AbCdEf``): enough to recognise it in a list.
    prefix: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    # SHA-256 hex of the whole key. Keys carry 256 random bits, so a fast unsalted hash is
    # the right tool: nothing can be brute-forced, and lookup stays one indexed equality.
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # None: every model
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    user: Mapped["User"] = relationship(back_populates="api_keys")

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utcnow())

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def __repr__(self) -> str:
        return f"<ApiKey {self.id} {self.prefix}… user={self.user_id}>"
