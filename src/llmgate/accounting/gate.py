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
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any

import redis
from flask import Flask, current_app

from .. import metrics
from ..auth.principal import Principal
from ..errors import QuotaExceeded, RateLimited, ServiceUnavailable
from ..extensions import get_redis
from ..providers.base import Deployment, Usage
from . import periods, spend
from .pricing import call_cost
from .settler import SETTLER_KEY, Pending, Settler, deliver, run_scripts
from .slots import keeper_for, lease_s

log = logging.getLogger(__name__)

STREAM_KEY = "llmgate:usage:events"
_SCRIPTS_KEY = "llmgate.accounting.scripts"
_UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


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


def load_scripts(app: Flask) -> None:
    """Load admit and settle into Redis now rather than on the first request's NOSCRIPT."""
    client = get_redis(app)
    for script in _scripts(app):
        client.script_load(script.script)


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
    admission = Admission(os.urandom(16).hex(), principal, deployment, estimated_tokens, attempt, started)
    plan = _plan(principal, deployment, attempt == 0)
    targets = budgets = None
    if attempt == 0 and (principal.key_budget is not None or principal.user_budget is not None):
        targets = spend.targets_for(principal, started.astimezone(timezone.utc).date())
        budgets = targets.watched
    if not plan.scopes and not budgets:
        return admission  # nothing to check: no round trip at all

    app = current_app._get_current_object()
    lease_ms = int(lease_s(app) * 1000)
    keys = list(plan.keys)
    args: list[Any] = [int(now.timestamp() * 1000) if now else 0, admission.id, estimated_tokens, lease_ms,
                       len(plan.scopes), len(budgets or ()), *plan.args]
    for w in budgets or ():
        keys.append(targets.keys[w.index])
        args.append(w.limit_nano)
    try:
        result = _run_admit(app, keys, args)
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
    if plan.slot_scopes:  # renewed while the call runs (accounting/slots.py)
        keeper_for(app).hold(admission.id, plan.slot_scopes)
    if plan.headers:
        admission.headers = _headers(plan.scopes, result)
    return admission


def _run_admit(app: Flask, keys: list[str], args: list[Any]) -> Any:
    """admit.lua's reply; this process's pending settles go first, in the same round trip, each
    delivered exactly once (as lost if the round trip fails)."""
    scripts = _scripts(app)
    settler = app.extensions.get(SETTLER_KEY)
    carried = settler.take() if settler is not None else None
    if not carried:
        return scripts[0](keys=keys, args=args)
    try:
        replies, reran = run_scripts(get_redis(app), scripts,
                                     [*((scripts[1], c.keys, c.args) for c in carried), (scripts[0], keys, args)])
    except BaseException:
        deliver(carried, None)
        raise
    deliver(carried, replies[:-1])
    result = replies[-1]
    if isinstance(result, Exception):
        raise result
    if reran and result[0] == 0:  # refused, maybe before a carried settle ran: ask again
        result = scripts[0](keys=keys, args=args)
    return result


def _refuse(result: list, scopes: tuple[_Scope, ...], principal: Principal, budgets: tuple | None,
            started: datetime):
    index, kind, retry_ms = int(result[1]), _text(result[2]), int(result[3])
    if kind == "budget":
        scope_kind, budget = budgets[index].kind, budgets[index].budget
        label = _owner_label(principal, scope_kind)
        metrics.RATE_LIMITED.labels(limit="budget", scope=scope_kind).inc()
        resets = periods.period_end(budget.period, started)
        spent = int(result[4]) / spend.NANO
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
           batch_id: str | None = None, later: bool = False) -> None:
    """Close an admission: exactly once, never raises for Redis trouble (the answer is already made).

    ``later``: the caller's answer is already sent; hand the round trip to this process's
    ``Settler`` (the next admit carries it, or the background flusher sends it).
    """
    if admission.settled:
        log.warning("admission settled twice; ignored", extra={"admission": admission.id})
        return
    admission.settled = True
    app = current_app._get_current_object()
    if admission.slot_scopes:
        keeper_for(app).release(admission.id)
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
    targets = spend.targets_for(p, admission.started_at.astimezone(timezone.utc).date())
    now_s = int(admission.started_at.timestamp())

    keys = [*admission.token_scopes, *admission.slot_scopes, *targets.keys, STREAM_KEY]
    args: list[Any] = [admission.id, admission.estimated_tokens, usage.total_tokens,
                       -1 if cost is None else int(cost * spend.NANO), len(admission.token_scopes) // 2,
                       len(admission.slot_scopes), targets.count, len(targets.watched), payload]
    # seconds to live, relative to the admission's clock (tests move it), given to a counter when created
    args += [-1 if at < 0 else max(1, at - now_s) for at in targets.expire_at]
    args += targets.watch_args
    if later:
        settler_for(app).submit(Pending(keys, args, event=event, done=lambda result: _observe(
            p, d, usage, cost, targets.watched, result, admission.started_at)))
        return
    try:
        result = _scripts(app)[1](keys=keys, args=args)
    except _UNAVAILABLE as error:
        metrics.USAGE_EVENTS_LOST.inc()
        log.error("usage event not recorded: Redis unreachable", extra={"error": str(error), "usage_event": event})
        return
    _observe(p, d, usage, cost, targets.watched, result, admission.started_at)


def settler_for(app: Flask) -> Settler:
    """This app's settler (created on first use)."""
    settler = app.extensions.get(SETTLER_KEY)
    if settler is None:
        settler = app.extensions[SETTLER_KEY] = Settler(app, lambda: _scripts(app), lambda: get_redis(app))
    return settler


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


def _observe(p: Principal, d: Deployment, usage: Usage, cost: Decimal | None, watched: tuple[spend.Watched, ...],
             result: list, started: datetime) -> None:
    tokens_in, tokens_out, spent_usd = _counters(d.name, str(p.key_id) if p.key_id is not None else "jwt")
    if usage.input_tokens:
        tokens_in.inc(usage.input_tokens)
    if usage.output_tokens:
        tokens_out.inc(usage.output_tokens)
    if cost:
        spent_usd.inc(float(cost))
    for j, w in enumerate(watched):
        spent = int(result[j * 2]) / spend.NANO
        w.remaining.set(float(w.budget.limit_usd) - spent)
        if int(result[j * 2 + 1]) == 1:
            from .budgets import soft_limit_reached

            soft_limit_reached(kind=w.kind, owner=w.owner, budget=w.budget, spent=spent, now=started)
