"""People who log in to llmgate and own API keys."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import TimestampMixin, UTCDateTime, utcnow
from .limits import LimitsMixin

if TYPE_CHECKING:
    from .api_key import ApiKey

ROLES = ("admin", "member")


class User(TimestampMixin, LimitsMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'member')", name="role"),
        CheckConstraint("budget_period IN ('day', 'week', 'month', 'total')", name="budget_period"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Stored lowercased (see llmgate.auth.users.normalise_email), so a plain unique index
    # is case-insensitive on every backend.
    email: Mapped[str] = mapped_column(String(254), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="member")
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)

    # The ORM deletes keys itself (not passive_deletes): SQLite does not enforce ON DELETE
    # CASCADE unless foreign keys are switched on per connection.
    api_keys: Mapped[list["ApiKey"]] = relationship(back_populates="user", cascade="all, delete-orphan")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email} {self.role}>"
