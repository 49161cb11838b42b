"""API keys: creation (the plaintext is returned once and never stored), listing, revocation,
and ``last_used_at`` recorded in Redis and flushed to the database lazily.
"""
from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from flask import Flask, current_app
from sqlalchemy import select

from ..errors import NotFound, ValidationError
from ..extensions import db, get_redis
from ..models.api_key import ApiKey
from ..models.base import is_row_id, utcnow
from ..models.user import User
from . import principal_cache
from .limits_fields import apply_limits
from .principal import Principal

KEY_PREFIX = "sk-lg-"
DISPLAY_PREFIX_LENGTH = 12  # "sk-lg-" + 6 random characters: recognisable, reveals 36 bits of 256
MAX_NAME_LENGTH = 100
MAX_MODELS = 200
MAX_MODEL_NAME_LENGTH = 200
LAST_USED_HASH = "llmgate:auth:key_last_used"
_LOCAL_LAST_USED = "llmgate.auth.last_used_recorded"
_DURATION = re.compile(r"^\s*(\d{1,6})\s*([smhdw])\s*$")
log = logging.getLogger(__name__)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)  # 256 random bits


def hash_key(plaintext: str) -> str:
    # A fast hash is right here: the key is 256 random bits, so there is nothing to
    # brute-force, and a salted slow KDF would make every /v1 lookup expensive.
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX)


def parse_duration(text: str, *, field: str = "expires_in") -> timedelta:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"2w"``, ``"3600s"`` → a positive timedelta."""
    match = _DURATION.match(text or "") if isinstance(text, str) else None
    if not match or int(match.group(1)) == 0:
        raise ValidationError("Invalid duration.", details={field: "must look like 30d, 12h, 90m, 2w or 3600s"})
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def _clean_name(name: Any) -> str:
    if name is None:
        return ""
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or "\x00" in name:  # PostgreSQL refuses NUL
        raise ValidationError("Invalid key name.", details={"name": f"must be text of at most {MAX_NAME_LENGTH} characters, without NUL"})
    return name.strip()


def _clean_models(models: Any) -> list[str] | None:
    if models is None:
        return None
    if isinstance(models, str):
        models = [m for m in (part.strip() for part in models.split(",")) if m]
    if (not isinstance(models, (list, tuple)) or len(models) > MAX_MODELS
            or not all(isinstance(m, str) and 0 < len(m) <= MAX_MODEL_NAME_LENGTH and "\x00" not in m for m in models)):
        raise ValidationError("Invalid model list.", details={"models": "must be a list of model names, or null for every model"})
    return sorted(set(models))


def _clean_expiry(expires_at: datetime | None, expires_in: str | None) -> datetime | None:
    if expires_at is not None and expires_in is not None:
        raise ValidationError("Give expires_at or expires_in, not both.", details={"expires_in": "conflicts with expires_at"})
    if expires_in is not None:
        return utcnow() + parse_duration(expires_in)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=timezone.utc)
        if expires_at <= utcnow():
            raise ValidationError("The expiry is in the past.", details={"expires_at": "must be in the future"})
    return expires_at


def create_key(*, user: User, name: str | None = None, models: Iterable[str] | str | None = None,
               expires_at: datetime | None = None, expires_in: str | None = None,
               **limits: Any) -> tuple[str, ApiKey]:
    """Create a key for ``user``; returns ``(plaintext, row)``. The plaintext is never stored."""
    plaintext = generate_key()
    key = ApiKey(user_id=user.id, name=_clean_name(name), prefix=plaintext[:DISPLAY_PREFIX_LENGTH],
                 key_hash=hash_key(plaintext), allowed_models=_clean_models(models),
                 expires_at=_clean_expiry(expires_at, expires_in))
    apply_limits(key, limits)
    db.session.add(key)
    db.session.commit()
    # A negative entry may have been cached if this exact key was tried before: impossible in
    # practice (256 random bits), but cheap to rule out.
    principal_cache.invalidate_key_hash(key.key_hash)
    return plaintext, key


def list_keys(*, user_id: int | None = None) -> list[ApiKey]:
    """Keys of one user, or of everyone when ``user_id`` is None (callers check who may ask)."""
    flush_last_used()
    if user_id is not None and not is_row_id(user_id):
        return []
    query = select(ApiKey).order_by(ApiKey.id)
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    return list(db.session.execute(query).scalars())


def get_key(*, key_id: int, viewer: Principal | None = None) -> ApiKey:
    """The key ``key_id``; members asking for another user's key get the same 404 as for none."""
    key = db.session.get(ApiKey, key_id) if is_row_id(key_id) else None
    if key is None or (viewer is not None and not viewer.is_admin and key.user_id != viewer.user_id):
        raise NotFound(f"No API key {key_id}.")
    return key


def find_key(*, id_or_prefix: str) -> ApiKey:
    """By numeric id, or by its shown prefix (``sk-lg-AbCdEf``); the prefix must be unambiguous."""
    text = id_or_prefix.strip()
    if text.isdigit():
        return get_key(key_id=int(text))
    if looks_like_key(text) and len(text) > DISPLAY_PREFIX_LENGTH:
        found = db.session.execute(select(ApiKey).where(ApiKey.key_hash == hash_key(text))).scalar_one_or_none()
        if found is not None:
            return found
    matches = list(db.session.execute(select(ApiKey).where(ApiKey.prefix == text.rstrip("…."))).scalars())
    if not matches:
        raise NotFound(f"No API key with id or prefix {text[:DISPLAY_PREFIX_LENGTH]!r}.")
    if len(matches) > 1:
        raise ValidationError("That prefix matches several keys; use the id.", details={"key": "ambiguous prefix"})
    return matches[0]


def update_key(*, key: ApiKey, changes: dict[str, Any]) -> ApiKey:
    """Rename, change the allow-list, expiry or limits. Takes effect on /v1 within a second."""
    if "name" in changes:
        key.name = _clean_name(changes["name"])
    if "models" in changes:
        key.allowed_models = _clean_models(changes["models"])
    if "expires_in" in changes or "expires_at" in changes:
        if changes.get("expires_in") is None and changes.get("expires_at") is None:
            key.expires_at = None
        else:
            key.expires_at = _clean_expiry(changes.get("expires_at"), changes.get("expires_in"))
    apply_limits(key, changes)
    db.session.commit()
    principal_cache.invalidate_key_hash(key.key_hash)
    return key


def revoke_key(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        db.session.commit()
    principal_cache.invalidate_key_hash(key.key_hash)
    return key


# --- last used ----------------------------------------------------------------------------------

def record_use(key_id: int) -> None:
    """Note that ``key_id`` was used, in Redis; at most once per ``resolution`` seconds per process.

    Never touches the database: :func:`flush_last_used` copies the times over later.
    """
    resolution = float(current_app.config.get("AUTH_LAST_USED_RESOLUTION_S", 10))
    seen: dict[int, float] = current_app.extensions.setdefault(_LOCAL_LAST_USED, {})
    now = time.time()
    if now - seen.get(key_id, 0.0) < resolution:
        return
    seen[key_id] = now
    if len(seen) > 100_000:
        seen.clear()
    get_redis().hset(LAST_USED_HASH, str(key_id), f"{now:.3f}")


# Delete a field only if it still holds the value that was flushed, so a newer time recorded
# meanwhile by another process survives.
_DELETE_IF_UNCHANGED = """
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 1
"""


def flush_last_used() -> int:
    """Copy ``last_used_at`` from Redis into the database; returns how many keys were updated."""
    redis = get_redis()
    pending = redis.hgetall(LAST_USED_HASH)
    if not pending:
        return 0
    times = {int(k): float(v) for k, v in pending.items()}
    keys = db.session.execute(select(ApiKey).where(ApiKey.id.in_(times))).scalars()
    updated = 0
    for key in keys:
        when = datetime.fromtimestamp(times[key.id], timezone.utc)
        if key.last_used_at is None or key.last_used_at < when:
            key.last_used_at = when
            updated += 1
    db.session.commit()
    args: list[Any] = []
    for field, value in pending.items():
        args += [field, value]
    redis.eval(_DELETE_IF_UNCHANGED, 1, LAST_USED_HASH, *args)
    return updated


def last_used_flush_loop(app: Flask, stop_event: threading.Event) -> None:
    """Worker loop (``fn(app, stop_event)``, see ``llmgate.worker``): flush ``last_used_at``
    every ``AUTH_LAST_USED_FLUSH_S`` seconds (default 30) until stopped.

    Safe in many workers at once: each flush only moves times forward.
    """
    interval = float(app.config.get("AUTH_LAST_USED_FLUSH_S", 30))
    with app.app_context():
        while not stop_event.is_set():
            try:
                flush_last_used()
            except Exception:  # Redis or the database is down: keep the times in Redis, retry later
                db.session.rollback()
                log.exception("flushing API key last_used_at failed")
            finally:
                db.session.remove()
            stop_event.wait(interval)
