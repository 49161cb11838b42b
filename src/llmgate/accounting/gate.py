"""The accounting hooks around every upstream attempt: ``admit`` before, ``settle`` after.

``admit`` is one Lua script run (EVALSHA) that checks and counts every rate limit, concurrency
slot and budget that applies, all or nothing; ``settle`` is one more that releases, corrects,
adds spend and appends the usage event to a Redis stream that the drainer writes to the
database. See docs/accounting.md for the algorithms.

Money in Redis is integer nano-USD (``INCRBY``): exact for every cost ``call_cost`` produces
(quantised to $0.00000001), and free of ``INCRBYFLOAT``, which crashes Redis < 7.0.8 when
called from a script (see settle.lua).
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
SPEND_PREFIX = "llmgate:spend-nusd"  # integer nano-USD; the old float counters were "llmgate:spend"
NANO = 10**9
_NANO = Decimal(NANO)
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

    @property
    def mode(self) -> int:
        """admit.lua's mode: 0 read for headers only, 1 count and report, 2 count (deployments)."""
        return 0 if not self.count else 2 if self.kind == "deployment" else 1


@dataclass(slots=True)
class Admission:
    """What ``admit`` counted, so that ``settle`` can undo and correct exactly that."""

    id: str
    principal: Principal
    deployment: Deployment
    estimated_tokens: int
    attempt: int
    started_at: datetime
    token_scopes: tuple[str, ...] = ()  # settle's keys: (window, sum) of every window holding a reservation
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

def _scopes(principal: Principal, deployment: Deployment, first: bool) -> list[_Scope]:
    scopes = []
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


def _owner_label(principal: Principal, kind: str) -> str:
    return f"key {principal.key_prefix or principal.key_id}" if kind == "key" else f"user {principal.email}"


def spend_key(kind: str, owner: str, period: str, now: datetime | None = None) -> str:
    """The Redis counter of an owner's spend in the period containing ``now``, in integer nano-USD."""
    return f"{SPEND_PREFIX}:{kind}:{owner}:{periods.bucket_id(period, now)}"


def to_nano(usd: float | Decimal | str) -> int:
    """USD to integer nano-USD, exactly for any decimal with at most 9 places."""
    return int((Decimal(str(usd)) * _NANO).to_integral_value())


def _opt(value: int | None) -> int:
    return -1 if value is None else int(value)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What admit sends and settle needs for one (principal, deployment, first attempt?): built once."""

    scopes: tuple[_Scope, ...]
    keys: tuple[str, ...]  # 3 per scope: window, token sum, concurrency
    args: tuple[int, ...]  # 4 per scope: mode, rpm, tpm, max concurrency
    token_scopes: tuple[str, ...]
    slot_scopes: tuple[str, ...]
    headers: bool  # any scope reports x-ratelimit-* headers


@lru_cache(maxsize=4096)
def _plan(principal: Principal, deployment: Deployment, first: bool) -> _Plan:
    scopes = tuple(_scopes(principal, deployment, first))
    keys: list[str] = []
    args: list[int] = []
    tokens: list[str] = []
    for s in scopes:
        keys += [s.base + ":w", s.base + ":s", s.base + ":c"]
        args += [s.mode, _opt(s.rpm), _opt(s.tpm), _opt(s.max_concurrency)]
        if s.count and s.windowed:
            tokens += [s.base + ":w", s.base + ":s"]
    return _Plan(scopes, tuple(keys), tuple(args), tuple(tokens),
                 tuple(s.base + ":c" for s in scopes if s.count and s.max_concurrency is not None),
                 any(s.kind != "deployment" and s.windowed for s in scopes))


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
    plan = _plan(principal, deployment, attempt == 0)
    targets = budgets = None
    if attempt == 0 and (principal.key_budget is not None or principal.user_budget is not None):
        targets = _spend_targets(principal, started.astimezone(timezone.utc).date())
        budgets = targets.watched
    if not plan.scopes and not budgets:
        return admission  # nothing to check: no round trip at all

    app = current_app._get_current_object()
    lease_ms = int(app.config.get("CONCURRENCY_LEASE_S", DEFAULT_LEASE_S) * 1000)
    keys = list(plan.keys)
    args: list[Any] = [int(now.timestamp() * 1000) if now else 0, admission.id, estimated_tokens, lease_ms,
                       len(plan.scopes), len(budgets or ()), *plan.args]
    for w in budgets or ():
        keys.append(targets.keys[w.index])
        args.append(w.limit_nano)
    try:
        result = _scripts(app)[0](keys=keys, args=args)
    except _UNAVAILABLE as error:
        if app.config.get("RATE_LIMIT_FAIL_OPEN"):
            log.warning("rate limits not checked: Redis unreachable", extra={"error": str(error)})
            return admission
        raise ServiceUnavailable("Rate limits cannot be checked right now (Redis is unreachable).",
                                 headers={"Retry-After": "1"}) from error

    if result[0] == 0:
        _refuse(result, plan.scopes, principal, budgets, started)
    admission.token_scopes = plan.token_scopes
    admission.slot_scopes = plan.slot_scopes
    if plan.headers:
        admission.headers = _headers(plan.scopes, result)
    return admission


def _refuse(result: list, scopes: tuple[_Scope, ...], principal: Principal, budgets: tuple | None,
            started: datetime):
    index, kind, retry_ms = int(result[1]), _text(result[2]), int(result[3])
    if kind == "budget":
        scope_kind, budget = budgets[index].kind, budgets[index].budget
        label = _owner_label(principal, scope_kind)
        metrics.RATE_LIMITED.labels(limit="budget", scope=scope_kind).inc()
        resets = periods.period_end(budget.period, started)
        spent = int(result[4]) / NANO
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


def _headers(scopes: tuple[_Scope, ...], result: list) -> dict[str, str]:
    """The x-ratelimit-* headers from the tightest key/user window (deployments are not the caller's)."""
    best_req = best_tok = None
    for i, s in enumerate(scopes):
        if s.kind == "deployment":
            continue
        count, tokens, reset = result[1 + i * 3], result[2 + i * 3], result[3 + i * 3]
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
    targets = _spend_targets(p, admission.started_at.astimezone(timezone.utc).date())
    now_s = int(admission.started_at.timestamp())

    keys = [*admission.token_scopes, *admission.slot_scopes, *targets.keys]
    args: list[Any] = [admission.id, admission.estimated_tokens, usage.total_tokens,
                       -1 if cost is None else int(cost * _NANO), len(admission.token_scopes) // 2,
                       len(admission.slot_scopes), targets.count, len(targets.watched), payload]
    # seconds to live, relative to the admission's clock (tests move it), given to a counter when created
    args += [-1 if at < 0 else max(1, at - now_s) for at in targets.expire_at]
    args += targets.watch_args
    app = current_app._get_current_object()
    try:
        result = _scripts(app)[1](keys=keys, args=args)
    except _UNAVAILABLE as error:
        metrics.USAGE_EVENTS_LOST.inc()
        log.error("usage event not recorded: Redis unreachable", extra={"error": str(error), "usage_event": event})
        return
    _observe(p, d, usage, cost, targets.watched, result, admission.started_at)


@dataclass(frozen=True, slots=True)
class _Watched:
    """A spend counter that has a budget: its new value feeds the gauge and the soft-limit alert."""

    index: int  # position among the spend counters
    kind: str
    owner: str
    budget: Budget
    limit_nano: int
    remaining: Any  # the llmgate_budget_remaining_usd child (labels() resolved once)


@dataclass(frozen=True, slots=True)
class _Targets:
    """settle's spend keys and arguments for one principal on one UTC day (cached: only strings)."""

    keys: tuple[str, ...]  # the spend counters, then one alert flag per watched counter
    count: int  # how many spend counters
    expire_at: tuple[int, ...]  # per counter: unix time it may expire (-1: never)
    watched: tuple[_Watched, ...]
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


def _spend_targets(p: Principal, day: date) -> _Targets:
    """Every spend counter settle adds to, and those with a budget (the gauge and alerts need them).

    Spend is kept for every period, budget or not, so a budget set mid-period starts from the
    truth and ``/api/usage/limits`` shows every period; a counter's TTL is set once, when it is
    created, so the extra periods cost one INCRBY each.
    """
    return _targets(p.key_id, p.user_id, p.key_budget, p.user_budget, day)


@lru_cache(maxsize=4096)
def _targets(key_id: int | None, user_id: int, key_budget: Budget | None, user_budget: Budget | None,
             day: date) -> _Targets:
    owners = [("user", str(user_id), user_budget)]
    if key_id is not None:
        owners.insert(0, ("key", str(key_id), key_budget))
    keys: list[str] = []
    flags: list[str] = []
    expire_at: list[int] = []
    watched: list[_Watched] = []
    watch_args: list[int] = []
    for kind, owner, budget in owners:
        for period, bucket, at in _buckets(day):
            if budget is not None and budget.period == period:
                watched.append(_Watched(len(keys), kind, owner, budget, to_nano(budget.limit_usd),
                                        metrics.BUDGET_REMAINING.labels(scope=kind, owner=owner, period=period)))
                flags.append(f"llmgate:spend-alert:{kind}:{owner}:{bucket}")
                watch_args += [len(keys) + 1, -1 if budget.soft_limit_usd is None else to_nano(budget.soft_limit_usd)]
            keys.append(f"{SPEND_PREFIX}:{kind}:{owner}:{bucket}")
            expire_at.append(at)
    return _Targets((*keys, *flags, STREAM_KEY), len(keys), tuple(expire_at), tuple(watched), tuple(watch_args))


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


def _observe(p: Principal, d: Deployment, usage: Usage, cost: Decimal | None, watched: tuple[_Watched, ...],
             result: list, started: datetime) -> None:
    tokens_in, tokens_out, spent_usd = _counters(d.name, str(p.key_id) if p.key_id is not None else "jwt")
    if usage.input_tokens:
        tokens_in.inc(usage.input_tokens)
    if usage.output_tokens:
        tokens_out.inc(usage.output_tokens)
    if cost:
        spent_usd.inc(float(cost))
    for j, w in enumerate(watched):
        spent = int(result[j * 2]) / NANO
        w.remaining.set(float(w.budget.limit_usd) - spent)
        if int(result[j * 2 + 1]) == 1:
            from .budgets import soft_limit_reached

            soft_limit_reached(kind=w.kind, owner=w.owner, budget=w.budget, spent=spent, now=started)
