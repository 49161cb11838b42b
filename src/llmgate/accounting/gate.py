"""The accounting hooks around every upstream attempt: ``admit`` before, ``settle`` after.

``admit`` is one Lua script run (EVALSHA) that checks and counts every rate limit, concurrency
slot and budget that applies, all or nothing; ``settle`` is one more that releases, corrects,
adds spend and appends the usage event to a Redis stream that the drainer writes to the
database. See docs/accounting.md for the algorithms.
"""
from __future__ import annotations

import json
import logging
import math
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any

import redis
from flask import Flask, current_app

from .. import metrics
from ..auth.principal import Budget, Principal
from ..errors import QuotaExceeded, RateLimited, ServiceUnavailable
from ..extensions import get_redis
from ..providers.base import Deployment, Usage
from . import periods
from .pricing import call_cost

log = logging.getLogger(__name__)

STREAM_KEY = "llmgate:usage:events"
_SCRIPTS_KEY = "llmgate.accounting.scripts"
_UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
DEFAULT_LEASE_S = 600


@dataclass(frozen=True, slots=True)
class _Scope:
    kind: str  # "key" | "user" | "deployment"
    ident: str
    label: str  # for messages: "key sk-lg-AbCd", "user 7", "deployment gpt-4o#0"
    rpm: int | None
    tpm: int | None
    max_concurrency: int | None
    count: bool  # False: read for headers only (key and user on retries)

    @property
    def base(self) -> str:
        return f"llmgate:rl:{self.kind}:{self.ident}"

    @property
    def windowed(self) -> bool:
        return self.rpm is not None or self.tpm is not None


@dataclass(slots=True)
class Admission:
    """What ``admit`` counted, so that ``settle`` can undo and correct exactly that."""

    id: str
    principal: Principal
    deployment: Deployment
    estimated_tokens: int
    attempt: int
    started_at: datetime
    token_scopes: tuple[str, ...] = ()  # key bases whose windows hold a reservation
    slot_scopes: tuple[str, ...] = ()  # key bases holding a concurrency slot
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False


# --- scripts ------------------------------------------------------------------------------------

def _scripts(app: Flask | None = None):
    app = app or current_app
    scripts = app.extensions.get(_SCRIPTS_KEY)
    if scripts is None:
        client = get_redis(app)
        package = resources.files(__package__)
        # register_script only hashes the source; EVALSHA loads it on first NOSCRIPT.
        scripts = (client.register_script((package / "admit.lua").read_text()),
                   client.register_script((package / "settle.lua").read_text()))
        app.extensions[_SCRIPTS_KEY] = scripts
    return scripts


# --- admit --------------------------------------------------------------------------------------

def _scopes(principal: Principal, deployment: Deployment, attempt: int) -> list[_Scope]:
    scopes = []
    first = attempt == 0
    if principal.key_id is not None:
        lim = principal.key_limits
        if lim.any:
            scopes.append(_Scope("key", str(principal.key_id), f"key {principal.key_prefix or principal.key_id}",
                                 lim.rpm, lim.tpm, lim.max_concurrency, first))
    lim = principal.user_limits
    if lim.any:
        scopes.append(_Scope("user", str(principal.user_id), f"user {principal.email}",
                             lim.rpm, lim.tpm, lim.max_concurrency, first))
    d = deployment.limits
    if d.rpm is not None or d.tpm is not None or d.max_concurrency is not None:
        scopes.append(_Scope("deployment", deployment.id, f"deployment {deployment.id}",
                             d.rpm, d.tpm, d.max_concurrency, True))
    return scopes


def _budgets(principal: Principal) -> list[tuple[str, str, str, Budget]]:
    """(kind, owner id, label, budget) for each budget the principal carries."""
    out = []
    if principal.key_id is not None and principal.key_budget is not None:
        out.append(("key", str(principal.key_id), f"key {principal.key_prefix or principal.key_id}",
                    principal.key_budget))
    if principal.user_budget is not None:
        out.append(("user", str(principal.user_id), f"user {principal.email}", principal.user_budget))
    return out


def spend_key(kind: str, owner: str, period: str, now: datetime | None = None) -> str:
    return f"llmgate:spend:{kind}:{owner}:{periods.bucket_id(period, now)}"


def _opt(value: int | None) -> int:
    return -1 if value is None else int(value)


def admit(*, principal: Principal, deployment: Deployment, estimated_tokens: int, attempt: int,
          now: datetime | None = None) -> Admission:
    """Check and count every limit that applies to one upstream attempt, or raise.

    Key and user limits and budgets apply on ``attempt == 0`` only (a retry is the same client
    request); the deployment's limits apply to every attempt. ``now`` is for tests: it moves
    both the budget period and the window clock (which is otherwise Redis server time).
    """
    started = now or datetime.now(timezone.utc)
    estimated_tokens = max(0, int(estimated_tokens))
    admission = Admission(uuid.uuid4().hex, principal, deployment, estimated_tokens, attempt, started)
    scopes = _scopes(principal, deployment, attempt)
    budgets = _budgets(principal) if attempt == 0 else []
    if not scopes and not budgets:
        return admission  # nothing to check: no round trip at all

    app = current_app._get_current_object()
    lease_ms = int(app.config.get("CONCURRENCY_LEASE_S", DEFAULT_LEASE_S) * 1000)
    keys: list[str] = []
    args: list[Any] = [int(now.timestamp() * 1000) if now else 0, admission.id, estimated_tokens, lease_ms,
                       len(scopes), len(budgets)]
    for s in scopes:
        keys += [s.base + ":w", s.base + ":t", s.base + ":s", s.base + ":c"]
        args += [1 if s.count else 0, _opt(s.rpm), _opt(s.tpm), _opt(s.max_concurrency)]
    for kind, owner, _, budget in budgets:
        keys.append(spend_key(kind, owner, budget.period, started))
        args.append(repr(float(budget.limit_usd)))
    try:
        result = _scripts(app)[0](keys=keys, args=args)
    except _UNAVAILABLE as error:
        if app.config.get("RATE_LIMIT_FAIL_OPEN"):
            log.warning("rate limits not checked: Redis unreachable", extra={"error": str(error)})
            return admission
        raise ServiceUnavailable("Rate limits cannot be checked right now (Redis is unreachable).",
                                 headers={"Retry-After": "1"}) from error

    if int(result[0]) == 0:
        _refuse(result, scopes, budgets, started)
    admission.token_scopes = tuple(s.base for s in scopes if s.count and s.windowed)
    admission.slot_scopes = tuple(s.base for s in scopes if s.count and s.max_concurrency is not None)
    admission.headers = _headers(scopes, result[2:])
    return admission


def _refuse(result: list, scopes: list[_Scope], budgets: list, started: datetime):
    index, kind, retry_ms = int(result[1]), _text(result[2]), int(result[3])
    if kind == "budget":
        scope_kind, _, label, budget = budgets[index]
        metrics.RATE_LIMITED.labels(limit="budget", scope=scope_kind).inc()
        resets = periods.period_end(budget.period, started)
        spent = float(_text(result[4]))
        when = (f"it resets at {resets.strftime('%Y-%m-%dT%H:%M:%SZ')}" if resets
                else "it is a lifetime budget and does not reset")
        headers = {"Retry-After": str(max(1, math.ceil((resets - started).total_seconds())))} if resets else {}
        raise QuotaExceeded(
            f"Budget exceeded for {label}: ${spent:.4f} spent of ${float(budget.limit_usd):.2f} "
            f"per {budget.period}; {when}.",
            headers=headers, details={"limit": "budget", "scope": scope_kind, "period": budget.period,
                                      "resets_at": resets.isoformat() if resets else None})
    scope = scopes[index]
    metrics.RATE_LIMITED.labels(limit=kind, scope=scope.kind).inc()
    what = {"rpm": f"{scope.rpm} requests per minute", "tpm": f"{scope.tpm} tokens per minute",
            "concurrency": f"{scope.max_concurrency} concurrent requests"}[kind]
    if retry_ms < 0:
        raise RateLimited(f"Request too large for {scope.label}: it needs more tokens than the limit of {what}.",
                          details={"limit": kind, "scope": scope.kind})
    retry_s = max(1, math.ceil(retry_ms / 1000))
    error = RateLimited(f"Rate limit reached for {scope.label}: {what}. Retry after {retry_s} s.",
                        headers={"Retry-After": str(retry_s)}, details={"limit": kind, "scope": scope.kind})
    error.limit_kind, error.scope = kind, scope.kind
    raise error


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _duration(ms: int) -> str:
    """OpenAI's reset format: ``20ms``, ``1.5s``, ``6m0s``."""
    ms = max(0, int(ms))
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:g}s"
    return f"{ms // 60_000}m{(ms % 60_000) / 1000:g}s"


def _headers(scopes: list[_Scope], rows: list) -> dict[str, str]:
    """The x-ratelimit-* headers from the tightest key/user window (deployments are not the caller's)."""
    best_req = best_tok = None
    for i, s in enumerate(scopes):
        if s.kind == "deployment":
            continue
        count, tokens, reset = int(rows[i * 3]), int(rows[i * 3 + 1]), int(rows[i * 3 + 2])
        if s.rpm is not None and (best_req is None or s.rpm - count < best_req[1]):
            best_req = (s.rpm, s.rpm - count, reset)
        if s.tpm is not None and (best_tok is None or s.tpm - tokens < best_tok[1]):
            best_tok = (s.tpm, s.tpm - tokens, reset)
    headers = {}
    for name, best in (("requests", best_req), ("tokens", best_tok)):
        if best:
            headers[f"x-ratelimit-limit-{name}"] = str(best[0])
            headers[f"x-ratelimit-remaining-{name}"] = str(max(0, best[1]))
            headers[f"x-ratelimit-reset-{name}"] = _duration(best[2])
    return headers


# --- settle -------------------------------------------------------------------------------------

def settle(admission: Admission, *, usage: Usage, outcome: str, error_kind: str | None,
           latency_ms: float | None, ttft_ms: float | None, request_id: str,
           batch_id: str | None = None) -> None:
    """Close an admission: exactly once, never raises for Redis trouble (the answer is already made)."""
    if admission.settled:
        log.warning("admission settled twice; ignored", extra={"admission": admission.id})
        return
    admission.settled = True
    p, d = admission.principal, admission.deployment
    cost = call_cost(d.price, usage)
    event = {
        "event_id": admission.id, "request_id": request_id, "ts": admission.started_at.timestamp(),
        "key_id": p.key_id, "user_id": p.user_id, "model": d.name, "deployment_id": d.id,
        "provider": d.provider, "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens, "cost": None if cost is None else str(cost),
        "latency_ms": latency_ms, "ttft_ms": ttft_ms, "outcome": outcome, "error_kind": error_kind,
        "batch_id": batch_id, "attempt": admission.attempt,
    }
    payload = json.dumps(event, separators=(",", ":"))
    spends, watched = _spend_targets(p, admission.started_at)

    keys: list[str] = []
    for base in admission.token_scopes:
        keys += (base + ":w", base + ":t", base + ":s")
    keys += [base + ":c" for base in admission.slot_scopes]
    keys += [t[0] for t in spends]
    keys += [w.flag for w in watched]
    keys.append(STREAM_KEY)
    args: list[Any] = [admission.id, usage.total_tokens, "" if cost is None else str(cost),
                       len(admission.token_scopes), len(admission.slot_scopes), len(spends), len(watched), payload]
    args += [t[1] for t in spends]
    for w in watched:
        args += (w.index + 1, w.soft)
    app = current_app._get_current_object()
    try:
        result = _scripts(app)[1](keys=keys, args=args)
    except _UNAVAILABLE as error:
        metrics.USAGE_EVENTS_LOST.inc()
        log.error("usage event not recorded: Redis unreachable", extra={"error": str(error), "usage_event": event})
        return
    _observe(p, d, usage, cost, watched, result, admission.started_at)


@dataclass(frozen=True, slots=True)
class _Watched:
    """A spend counter that has a budget: its new value feeds the gauge and the soft-limit alert."""

    index: int  # position among the spend counters
    kind: str
    owner: str
    budget: Budget
    flag: str  # set once per period when the soft limit is crossed
    soft: float  # -1: no soft limit


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


def _spend_targets(p: Principal, now: datetime) -> tuple[list[tuple[str, int]], list[_Watched]]:
    """Every spend counter to add to — (key, seconds to live, -1: forever) — and those with a budget.

    TTLs are relative to ``now`` (not absolute times) so that a caller's clock, not Redis's,
    decides which bucket is current: tests move ``now`` freely.

    Spend is kept for every period, budget or not, so a budget set mid-period starts from the truth.
    """
    owners = [("user", str(p.user_id), p.user_budget)]
    if p.key_id is not None:
        owners.insert(0, ("key", str(p.key_id), p.key_budget))
    spends: list[tuple[str, int]] = []
    watched: list[_Watched] = []
    now_s = int(now.timestamp())
    buckets = _buckets(now.astimezone(timezone.utc).date())
    for kind, owner, budget in owners:
        prefix = f"llmgate:spend:{kind}:{owner}:"
        for period, bucket, expire_at in buckets:
            if budget is not None and budget.period == period:
                soft = -1.0 if budget.soft_limit_usd is None else float(budget.soft_limit_usd)
                watched.append(_Watched(len(spends), kind, owner, budget,
                                        f"llmgate:spend-alert:{kind}:{owner}:{bucket}", soft))
            spends.append((prefix + bucket, -1 if expire_at < 0 else max(1, expire_at - now_s)))
    return spends, watched


_TOKEN_COUNTERS: dict[tuple[str, str], tuple[Any, Any, Any]] = {}


def _counters(model: str, key: str):
    """Metric children resolved once per (model, key): ``labels()`` takes a lock on every call."""
    found = _TOKEN_COUNTERS.get((model, key))
    if found is None:
        found = _TOKEN_COUNTERS[(model, key)] = (
            metrics.USAGE_TOKENS.labels(model=model, key=key, direction="input"),
            metrics.USAGE_TOKENS.labels(model=model, key=key, direction="output"),
            metrics.USAGE_COST.labels(model=model, key=key))
    return found


def _observe(p: Principal, d: Deployment, usage: Usage, cost: Decimal | None, watched: list[_Watched],
             result: list, started: datetime) -> None:
    tokens_in, tokens_out, spent_usd = _counters(d.name, str(p.key_id) if p.key_id is not None else "jwt")
    if usage.input_tokens:
        tokens_in.inc(usage.input_tokens)
    if usage.output_tokens:
        tokens_out.inc(usage.output_tokens)
    if cost:
        spent_usd.inc(float(cost))
    for j, w in enumerate(watched):
        spent = float(_text(result[j * 2]))
        metrics.BUDGET_REMAINING.labels(scope=w.kind, owner=w.owner, period=w.budget.period).set(
            float(w.budget.limit_usd) - spent)
        if int(result[j * 2 + 1]) == 1:
            from .budgets import soft_limit_reached

            soft_limit_reached(kind=w.kind, owner=w.owner, budget=w.budget, spent=spent, now=started)
