"""Principals cached in process (≤1 s) over Redis (minutes) over the database.

An API key's principal is keyed by the key's SHA-256, a JWT's by the user id. Any change that
affects who may do what (revocation, expiry, deactivation, role, limits, allow-list) deletes
the Redis entry (:func:`invalidate_user`, :func:`invalidate_key_hash`); other processes drop
their in-process copy within ``AUTH_LOCAL_CACHE_TTL_S`` (default and maximum 1 s), so changes
take effect everywhere within a second without a database query per request.

A lookup that misses Redis reads the database and then fills Redis; an invalidation landing
between those two steps must not be undone by the fill (a revoked key would work for the entry's
whole TTL). So every entry has a version counter: invalidating bumps it, and the fill is written
only if the version it read before the database query is still current (one Lua script).
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from flask import current_app
from sqlalchemy import select

from ..extensions import db, get_redis, redis_script
from ..models.api_key import ApiKey
from ..models.base import utcnow
from ..models.user import User
from .principal import Budget, Limits, Principal

REDIS_PREFIX = "llmgate:auth:principal:"
VERSION_PREFIX = "llmgate:auth:principal-version:"
# A version must outlive any fill that read it: far longer than a database query can take.
VERSION_TTL_S = 3600
# Fill the entry only if nobody invalidated it since the version was read (SET and EXPIRE apart:
# the embedded Redis 6.2 must not run a SET EX from Lua, see accounting/admit.lua).
_FILL = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
_LOCAL_KEY = "llmgate.auth.principal_cache"
_MISSING = "missing"  # cached "no such (active) key/user", so bad keys don't reach the database


@dataclass(frozen=True, slots=True)
class CachedPrincipal:
    """A principal plus what must be checked at every use, even when cached."""

    principal: Principal | None  # None: unknown, revoked or inactive
    expires_at: float | None = None  # the key's expiry (epoch seconds)
    password_changed_at: float | None = None  # JWTs issued before this are refused

    def usable(self, now: float | None = None) -> Principal | None:
        if self.principal is None:
            return None
        if self.expires_at is not None and self.expires_at <= (now or time.time()):
            return None
        return self.principal


class LocalTTLCache:
    """A small thread-safe LRU whose entries live at most ``ttl`` seconds."""

    def __init__(self, *, ttl: float, max_size: int):
        self.ttl = ttl
        self.max_size = max_size
        self._items: OrderedDict[str, tuple[float, CachedPrincipal]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedPrincipal | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] <= time.monotonic():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: str, value: CachedPrincipal) -> None:
        with self._lock:
            self._items[key] = (time.monotonic() + self.ttl, value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_size:
                self._items.popitem(last=False)

    def discard(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def local_cache() -> LocalTTLCache:
    cache = current_app.extensions.get(_LOCAL_KEY)
    if cache is None:
        ttl = min(float(current_app.config.get("AUTH_LOCAL_CACHE_TTL_S", 1.0)), 1.0)
        size = int(current_app.config.get("AUTH_LOCAL_CACHE_SIZE", 10_000))
        cache = current_app.extensions[_LOCAL_KEY] = LocalTTLCache(ttl=ttl, max_size=size)
    return cache


def _redis_ttl() -> int:
    return int(current_app.config.get("AUTH_REDIS_CACHE_TTL_S", 300))


# --- building principals from rows --------------------------------------------------------------

def _limits(row: User | ApiKey) -> Limits:
    return Limits(rpm=row.rpm, tpm=row.tpm, max_concurrency=row.max_concurrency)


def _budget(row: User | ApiKey) -> Budget | None:
    if row.budget_usd is None:
        return None
    return Budget(limit_usd=float(row.budget_usd), period=row.budget_period or "month",
                  soft_limit_usd=None if row.budget_soft_usd is None else float(row.budget_soft_usd))


def principal_for_user_row(user: User, key: ApiKey | None = None) -> Principal:
    return Principal(
        user_id=user.id,
        email=user.email,
        role=user.role,
        key_id=key.id if key else None,
        key_prefix=key.prefix if key else None,
        allowed_models=frozenset(key.allowed_models) if key and key.allowed_models is not None else None,
        key_limits=_limits(key) if key else Limits(),
        user_limits=_limits(user),
        key_budget=_budget(key) if key else None,
        user_budget=_budget(user),
    )


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _load_key(key_hash: str) -> CachedPrincipal:
    key = db.session.execute(select(ApiKey).where(ApiKey.key_hash == key_hash)).scalar_one_or_none()
    if key is None or key.revoked_at is not None or not key.user.active or key.is_expired(utcnow()):
        return CachedPrincipal(None)
    return CachedPrincipal(principal_for_user_row(key.user, key), expires_at=_epoch(key.expires_at),
                           password_changed_at=_epoch(key.user.password_changed_at))


def _load_user(user_id: int) -> CachedPrincipal:
    user = db.session.get(User, user_id)
    if user is None or not user.active:
        return CachedPrincipal(None)
    return CachedPrincipal(principal_for_user_row(user), password_changed_at=_epoch(user.password_changed_at))


# --- serialisation ------------------------------------------------------------------------------

def _limits_dict(limits: Limits) -> dict[str, Any]:
    return {"rpm": limits.rpm, "tpm": limits.tpm, "max_concurrency": limits.max_concurrency}


def _budget_dict(budget: Budget | None) -> dict[str, Any] | None:
    if budget is None:
        return None
    return {"limit_usd": budget.limit_usd, "period": budget.period, "soft_limit_usd": budget.soft_limit_usd}


def dumps(entry: CachedPrincipal) -> str:
    p = entry.principal
    if p is None:
        return json.dumps({"status": _MISSING})
    return json.dumps({
        "status": "ok",
        "expires_at": entry.expires_at,
        "password_changed_at": entry.password_changed_at,
        "principal": {
            "user_id": p.user_id, "email": p.email, "role": p.role, "key_id": p.key_id,
            "key_prefix": p.key_prefix,
            "allowed_models": None if p.allowed_models is None else sorted(p.allowed_models),
            "key_limits": _limits_dict(p.key_limits), "user_limits": _limits_dict(p.user_limits),
            "key_budget": _budget_dict(p.key_budget), "user_budget": _budget_dict(p.user_budget),
        },
    })


def loads(raw: bytes | str) -> CachedPrincipal:
    data = json.loads(raw)
    if data.get("status") != "ok":
        return CachedPrincipal(None)
    p = data["principal"]
    principal = Principal(
        user_id=p["user_id"], email=p["email"], role=p["role"], key_id=p["key_id"],
        key_prefix=p["key_prefix"],
        allowed_models=None if p["allowed_models"] is None else frozenset(p["allowed_models"]),
        key_limits=Limits(**p["key_limits"]), user_limits=Limits(**p["user_limits"]),
        key_budget=Budget(**p["key_budget"]) if p["key_budget"] else None,
        user_budget=Budget(**p["user_budget"]) if p["user_budget"] else None,
    )
    return CachedPrincipal(principal, expires_at=data.get("expires_at"),
                           password_changed_at=data.get("password_changed_at"))


# --- lookups ------------------------------------------------------------------------------------

def _lookup(cache_key: str, load: Callable[[], CachedPrincipal]) -> CachedPrincipal:
    local = local_cache()
    entry = local.get(cache_key)
    if entry is not None:
        return entry
    redis = get_redis()
    raw, version = redis.mget(REDIS_PREFIX + cache_key, VERSION_PREFIX + cache_key)
    if raw is not None:
        entry = loads(raw)
    else:
        entry = load()
        ttl = _redis_ttl()
        if entry.expires_at is not None:
            ttl = max(1, min(ttl, int(entry.expires_at - time.time()) + 1))
        if entry.principal is None:
            ttl = min(ttl, 60)  # unknown keys: short, so the database isn't asked on every retry
        filled = redis_script(_FILL)(keys=[REDIS_PREFIX + cache_key, VERSION_PREFIX + cache_key],
                                     args=[version or b"", dumps(entry), ttl])
        if not filled:  # invalidated while we read: what we read may be stale, keep it for this call only
            return entry
    local.put(cache_key, entry)
    return entry


def for_key_hash(key_hash: str) -> CachedPrincipal:
    return _lookup("key:" + key_hash, lambda: _load_key(key_hash))


def for_user_id(user_id: int) -> CachedPrincipal:
    return _lookup(f"user:{int(user_id)}", lambda: _load_user(int(user_id)))


# --- invalidation -------------------------------------------------------------------------------

def _invalidate(*cache_keys: str) -> None:
    """Drop the entries and bump their versions, so a fill already reading the database is not written."""
    if not cache_keys:
        return
    pipe = get_redis().pipeline(transaction=False)
    for cache_key in cache_keys:
        pipe.incr(VERSION_PREFIX + cache_key)
        pipe.expire(VERSION_PREFIX + cache_key, VERSION_TTL_S)
    pipe.delete(*(REDIS_PREFIX + cache_key for cache_key in cache_keys))
    pipe.execute()
    local = local_cache()
    for cache_key in cache_keys:
        local.discard(cache_key)


def invalidate_key_hash(*key_hashes: str) -> None:
    _invalidate(*("key:" + h for h in key_hashes))


def invalidate_user(user_id: int) -> None:
    """Forget the user's principal and those of all their keys (role, limits, active changed)."""
    hashes = db.session.execute(select(ApiKey.key_hash).where(ApiKey.user_id == user_id)).scalars().all()
    _invalidate(f"user:{int(user_id)}", *("key:" + h for h in hashes))
