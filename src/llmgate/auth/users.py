"""Users: creation, lookup, edits (role, active, password, limits) and password login."""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, NotFound, Unauthorized, ValidationError
from ..extensions import db
from ..models.base import is_row_id, utcnow
from ..models.user import ROLES, User
from . import login_limits, passwords, principal_cache
from .limits_fields import apply_limits

MAX_EMAIL_LENGTH = 254
# Deliberately loose: one @, something on each side, a dot in the domain — or a bare host
# such as "localhost" (the first admin is admin@localhost). No control characters: PostgreSQL
# cannot store NUL, and no mailbox has one.
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$")


def normalise_email(email: Any, *, field: str = "email") -> str:
    if not isinstance(email, str) or not _EMAIL.match(email.strip()) or len(email.strip()) > MAX_EMAIL_LENGTH:
        raise ValidationError("Invalid email address.", details={field: "must be an email address"})
    return email.strip().lower()


def _check_role(role: Any) -> str:
    if role not in ROLES:
        raise ValidationError("Invalid role.", details={"role": f"must be one of {', '.join(ROLES)}"})
    return role


def create_user(*, email: str, password: str, role: str = "member", active: bool = True, **limits: Any) -> User:
    email = normalise_email(email)
    user = User(email=email, password_hash=passwords.hash_password(passwords.check_password_rules(password)),
                role=_check_role(role), active=bool(active), password_changed_at=utcnow())
    apply_limits(user, limits)
    if get_user_by_email(email=email) is not None:
        raise Conflict(f"A user with email {email} already exists.", details={"email": "already taken"})
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:  # a concurrent create won the race
        db.session.rollback()
        raise Conflict(f"A user with email {email} already exists.", details={"email": "already taken"}) from None
    return user


def count_users() -> int:
    return db.session.execute(select(func.count(User.id))).scalar_one()


def list_users() -> list[User]:
    return list(db.session.execute(select(User).order_by(User.id)).scalars())


def get_user(*, user_id: int) -> User:
    user = db.session.get(User, user_id) if is_row_id(user_id) else None
    if user is None:
        raise NotFound(f"No user {user_id}.")
    return user


def get_user_by_email(*, email: str) -> User | None:
    email = email.strip().lower()
    if not _EMAIL.match(email):  # no user has it; and text with NUL would fail the query on PostgreSQL
        return None
    return db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()


def require_user_by_email(*, email: str) -> User:
    user = get_user_by_email(email=email)
    if user is None:
        raise NotFound(f"No user with email {email.strip().lower()}.")
    return user


def update_user(*, user: User, changes: dict[str, Any]) -> User:
    """Apply ``changes`` (role, active, password, email, limit/budget fields); effective on
    every process within a second."""
    if "email" in changes:
        email = normalise_email(changes["email"])
        other = get_user_by_email(email=email)
        if other is not None and other.id != user.id:
            raise Conflict(f"A user with email {email} already exists.", details={"email": "already taken"})
        user.email = email
    if "role" in changes:
        role = _check_role(changes["role"])
        if role != "admin":
            _ensure_another_admin(user, "role")
        user.role = role
    if "active" in changes:
        if not isinstance(changes["active"], bool):
            raise ValidationError("Invalid active flag.", details={"active": "must be true or false"})
        if not changes["active"]:
            _ensure_another_admin(user, "active")
        user.active = changes["active"]
    if "password" in changes:
        _set_password(user, changes["password"])
    apply_limits(user, changes)
    db.session.commit()
    principal_cache.invalidate_user(user.id)
    return user


def _ensure_another_admin(user: User, field: str) -> None:
    """Refuse to demote, deactivate or delete the last active admin: nobody could undo it."""
    if not (user.role == "admin" and user.active):
        return
    others = db.session.execute(select(func.count(User.id)).where(
        User.role == "admin", User.active.is_(True), User.id != user.id)).scalar_one()
    if others == 0:
        raise Conflict("This is the last active admin; make another admin first.",
                       details={field: "would leave no active admin"})


def change_password(*, user: User, password: str) -> User:
    """Set a new password; every token issued before now stops working."""
    _set_password(user, password)
    db.session.commit()
    principal_cache.invalidate_user(user.id)
    return user


def _set_password(user: User, password: Any) -> None:
    user.password_hash = passwords.hash_password(passwords.check_password_rules(password))
    user.password_changed_at = utcnow()


def deactivate_user(*, user: User) -> User:
    return update_user(user=user, changes={"active": False})


def delete_user(*, user: User) -> None:
    """Delete the user and (by cascade) their keys."""
    _ensure_another_admin(user, "user")
    user_id = user.id
    principal_cache.invalidate_user(user_id)  # needs the key hashes, so before the delete
    db.session.delete(user)
    db.session.commit()
    principal_cache.invalidate_user(user_id)


_BAD_LOGIN = "Invalid email or password."


def authenticate_password(*, email: Any, password: Any, client_address: str | None) -> User:
    """The user with these credentials, or ``Unauthorized`` with one message whatever was wrong
    (unknown email, wrong password, deactivated account). Rate limited per account and per
    client address (``RateLimited`` with ``Retry-After``)."""
    email_text = email.strip().lower() if isinstance(email, str) else ""
    login_limits.check(account=email_text, client_address=client_address)
    user = get_user_by_email(email=email_text) if email_text else None
    if user is None:
        passwords.burn_verification_time(password)
        ok = False
    else:
        ok = passwords.verify_password(user.password_hash, password) and user.active
    if not ok:
        login_limits.record_failure(account=email_text)
        raise Unauthorized(_BAD_LOGIN, code="invalid_credentials")
    login_limits.record_success(account=email_text)
    if passwords.needs_rehash(user.password_hash):
        # Parameters changed since this hash was made: upgrade it while we hold the password.
        user.password_hash = passwords.hash_password(password)
        db.session.commit()
    return user
