"""Configuration read from the environment (prefix ``LLMGATE_``, ``.env`` honoured).

Everything has a development default so that ``llmgate run`` works from nothing; production
refuses the generated secrets (see :func:`check_production_ready`).
"""
from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any, Mapping

ENV_PREFIX = "LLMGATE_"
_GENERATED_MARKER = "llmgate-generated:"


def _env(name: str, default: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    value = (environ if environ is not None else os.environ).get(ENV_PREFIX + name)
    return value if value not in (None, "") else default


def _bool(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _generated_secret(instance_path: Path, name: str) -> str:
    """A secret generated once per instance folder, so restarts keep sessions and tokens valid."""
    path = instance_path / f"{name}.secret"
    if not path.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return _GENERATED_MARKER + path.read_text().strip()


def is_generated_secret(value: str | None) -> bool:
    return bool(value) and value.startswith(_GENERATED_MARKER)


def load(instance_path: str | os.PathLike, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Build the Flask config mapping from ``LLMGATE_*`` variables."""
    instance = Path(instance_path)
    env = lambda name, default=None: _env(name, default, environ)  # noqa: E731
    llmgate_env = env("ENV", "development")
    config: dict[str, Any] = {
        "LLMGATE_ENV": llmgate_env,
        "TESTING": llmgate_env == "testing",
        "INSTANCE_PATH": str(instance),
        "SQLALCHEMY_DATABASE_URI": env("DATABASE_URL", f"sqlite:///{instance / 'llmgate.db'}"),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": env("REDIS_URL"),
        "MODELS_FILE": env("MODELS_FILE", "models.yaml"),
        "SECRET_KEY": env("SECRET_KEY") or _generated_secret(instance, "secret_key"),
        "JWT_SECRET_KEY": env("JWT_SECRET_KEY") or _generated_secret(instance, "jwt_secret_key"),
        "LOG_FORMAT": env("LOG_FORMAT", "json"),
        "LOG_FILE": env("LOG_FILE"),
        "LOG_LEVEL": env("LOG_LEVEL", "INFO"),
        "LOG_PROMPTS": _bool(env("LOG_PROMPTS"), False),
        "CORS_ORIGINS": [o.strip() for o in (env("CORS_ORIGINS") or "").split(",") if o.strip()],
        "BIND": env("BIND", "127.0.0.1:8000"),
        "METRICS_DIR": env("METRICS_DIR"),
        # When set, /metrics answers only `Authorization: Bearer <token>`.
        "METRICS_TOKEN": env("METRICS_TOKEN"),
        # Requests bigger than this are answered 413 before they are read.
        "MAX_CONTENT_LENGTH": int(env("MAX_REQUEST_BYTES", str(32 * 1024 * 1024))),
        "FILES_DIR": env("FILES_DIR", str(instance / "files")),
        "MAX_UPLOAD_BYTES": int(env("MAX_UPLOAD_BYTES", str(512 * 1024 * 1024))),
        # Batches (llmgate.batches, docs/batches.md): rows per chunk job, threads per chunk (capped by the
        # model's max_concurrency), how often results are committed, how long a dead worker's lease
        # lingers, how often the supervisor looks, when a budget-paused batch is retried, link lifetime.
        "BATCH_CHUNK_ROWS": int(env("BATCH_CHUNK_ROWS", "500")),
        "BATCH_CONCURRENCY": int(env("BATCH_CONCURRENCY", "32")),  # threads for a model without max_concurrency
        "BATCH_MAX_CONCURRENCY": int(env("BATCH_MAX_CONCURRENCY", "128")),  # cap on a model's max_concurrency
        "BATCH_COMMIT_ROWS": int(env("BATCH_COMMIT_ROWS", "25")),
        "BATCH_COMMIT_S": float(env("BATCH_COMMIT_S", "0.5")),
        "BATCH_LEASE_TTL_S": float(env("BATCH_LEASE_TTL_S", "10")),
        "BATCH_SUPERVISE_S": float(env("BATCH_SUPERVISE_S", "2")),
        "BATCH_BUDGET_RECHECK_S": float(env("BATCH_BUDGET_RECHECK_S", "60")),
        "BATCH_DOWNLOAD_TTL_S": int(env("BATCH_DOWNLOAD_TTL_S", "3600")),
        "BATCH_WEBHOOK_ATTEMPTS": int(env("BATCH_WEBHOOK_ATTEMPTS", "5")),
        "BATCH_WEBHOOK_BACKOFF_S": float(env("BATCH_WEBHOOK_BACKOFF_S", "1")),
        "BATCH_JOB_TIMEOUT_S": int(env("BATCH_JOB_TIMEOUT_S", str(6 * 3600))),
        "BATCH_TABULAR_WINDOW": env("BATCH_TABULAR_WINDOW", "7d"),
        "RATE_LIMIT_FAIL_OPEN": _bool(env("RATE_LIMIT_FAIL_OPEN"), False),
        # Accounting: a concurrency slot whose process died frees itself within this lease (live
        # processes renew theirs every third of it: accounting/slots.py).
        "CONCURRENCY_LEASE_S": float(env("CONCURRENCY_LEASE_S", "30")),
        # Accounting: soft budget alerts POST here (HMAC-signed with WEBHOOK_SECRET or SECRET_KEY).
        "BUDGET_WEBHOOK_URL": env("BUDGET_WEBHOOK_URL"),
        "WEBHOOK_SECRET": env("WEBHOOK_SECRET"),
        # Accounting: usage events moved from Redis to the database per drain batch.
        "USAGE_DRAIN_BATCH": int(env("USAGE_DRAIN_BATCH", "1000")),
        "WEBHOOK_ALLOWLIST": [h.strip() for h in (env("WEBHOOK_ALLOWLIST") or "").split(",") if h.strip()],
        # JWT: short access tokens, refresh tokens for a day; role travels as a claim.
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(seconds=int(env("JWT_ACCESS_TTL_S", "900"))),
        "JWT_REFRESH_TOKEN_EXPIRES": timedelta(seconds=int(env("JWT_REFRESH_TTL_S", "86400"))),
        "JWT_TOKEN_LOCATION": ["headers"],
        # flask-restx + Flask-JWT-Extended: without this a missing token surfaces as a 500.
        "PROPAGATE_EXCEPTIONS": True,
        "RESTX_MASK_SWAGGER": False,
        # Dashboard (llmgate.dashboard): a signed-cookie browser session, ended after this many
        # seconds without a request; HttpOnly + SameSite=Lax always, Secure in production (and
        # on any request that arrived over https, see llmgate.dashboard.session).
        "DASHBOARD_IDLE_TIMEOUT_S": int(env("DASHBOARD_IDLE_TIMEOUT_S", "1800")),
        "SESSION_COOKIE_NAME": "llmgate_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool(env("SESSION_COOKIE_SECURE"), llmgate_env == "production"),
        # Gateway routing (llmgate.gateway.router/health): retries with exponential backoff and
        # full jitter, Retry-After honoured up to a cap, cool-down after consecutive failures,
        # and how often models.yaml is checked for changes.
        "GATEWAY_MAX_RETRIES": int(env("GATEWAY_MAX_RETRIES", "2")),
        "GATEWAY_BACKOFF_BASE_S": float(env("GATEWAY_BACKOFF_BASE_S", "0.5")),
        "GATEWAY_BACKOFF_MAX_S": float(env("GATEWAY_BACKOFF_MAX_S", "8")),
        "GATEWAY_RETRY_AFTER_MAX_S": float(env("GATEWAY_RETRY_AFTER_MAX_S", "10")),
        "GATEWAY_COOLDOWN_FAILURES": int(env("GATEWAY_COOLDOWN_FAILURES", "3")),
        "GATEWAY_COOLDOWN_S": float(env("GATEWAY_COOLDOWN_S", "30")),
        "GATEWAY_RELOAD_CHECK_S": float(env("GATEWAY_RELOAD_CHECK_S", "1")),
        "ERROR_404_HELP": False,
    }
    return config


def check_production_ready(config: Mapping[str, Any]) -> list[str]:
    """Problems that make this configuration unfit for production (empty list when fine)."""
    problems = []
    for key, var in (("SECRET_KEY", "LLMGATE_SECRET_KEY"), ("JWT_SECRET_KEY", "LLMGATE_JWT_SECRET_KEY")):
        if is_generated_secret(config.get(key)):
            problems.append(f"{var} must be set in production (a generated development secret is in use)")
        elif len(str(config.get(key) or "")) < 32:
            problems.append(f"{var} must be at least 32 characters long")
    return problems
