"""One error vocabulary for every provider: each provider maps its SDK's exceptions into these.

``status`` is what llmgate should answer its own client; ``upstream_status`` is what the
upstream said (None when it never answered).
"""
from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

ErrorKind = Literal[
    "authentication", "permission", "not_found", "bad_request", "context_too_long",
    "rate_limited", "timeout", "connection", "upstream_server",
]

# Phrases providers use when a prompt exceeds the model's window (OpenAI code
# context_length_exceeded, Anthropic "prompt is too long", vLLM "maximum context length").
_CONTEXT_PHRASES = ("context length", "context_length", "context window", "prompt is too long",
                    "maximum context", "too many tokens", "input is too long")


class ProviderError(Exception):
    kind: ClassVar[ErrorKind]
    default_status: ClassVar[int]
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, status: int | None = None, upstream_status: int | None = None,
                 retry_after: float | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status or self.default_status
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.body = body  # the upstream error body (parsed JSON, or text), when there was one

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status}, retry_after={self.retry_after})"


# The provider refusing llmgate's own credentials is the gateway's misconfiguration, not the
# caller's: answering 401/403 would make the caller's SDK report *their* llmgate key as bad.
class AuthenticationError(ProviderError):
    kind, default_status = "authentication", 502


class PermissionDeniedError(ProviderError):
    kind, default_status = "permission", 502


class NotFoundError(ProviderError):
    kind, default_status = "not_found", 404


class BadRequestError(ProviderError):
    kind, default_status = "bad_request", 400


class ContextTooLongError(BadRequestError):
    # A bad request that a bigger-context fallback might still serve, hence its own kind.
    kind = "context_too_long"


class RateLimitedError(ProviderError):
    kind, default_status, retryable = "rate_limited", 429, True


class UpstreamTimeout(ProviderError):
    kind, default_status, retryable = "timeout", 504, True


class ConnectionFailed(ProviderError):
    kind, default_status, retryable = "connection", 502, True


class UpstreamServerError(ProviderError):
    kind, default_status, retryable = "upstream_server", 502, True


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` (OpenAI) or ``Retry-After`` (seconds or HTTP date)."""
    if not headers:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(float(value) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # unreadable: let the retry policy choose its own backoff
    return max(parsed.timestamp() - time.time(), 0.0)


def error_message(body: Any, fallback: str) -> str:
    """The human message inside an OpenAI or Anthropic error body (both nest it under ``error``)."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return inner["message"]
    if isinstance(body, str) and body:
        return body[:500]
    return fallback


def _is_context_error(message: str, body: Any) -> bool:
    text = message.lower()
    if any(phrase in text for phrase in _CONTEXT_PHRASES):
        return True
    inner = body.get("error", body) if isinstance(body, Mapping) else None
    return isinstance(inner, Mapping) and inner.get("code") == "context_length_exceeded"


def from_status(status: int, *, body: Any, headers: Mapping[str, str] | None = None) -> ProviderError:
    """The vocabulary error for an upstream HTTP error answer, whichever SDK received it."""
    message = error_message(body, f"upstream answered HTTP {status}")
    extra = {"upstream_status": status, "retry_after": parse_retry_after(headers), "body": body}
    if status in (400, 413, 422):
        if status == 413 or _is_context_error(message, body):
            return ContextTooLongError(message, status=status if status == 413 else 400, **extra)
        return BadRequestError(message, status=status, **extra)
    if status == 401:
        return AuthenticationError(message, **extra)
    if status == 403:
        return PermissionDeniedError(message, **extra)
    if status == 404:
        return NotFoundError(message, **extra)
    if status == 408:
        return UpstreamTimeout(message, **extra)
    if status == 429:
        return RateLimitedError(message, **extra)
    if status >= 500 or status == 409:
        # 409 (lock contention) and 529 (Anthropic overloaded) are transient like a 5xx.
        return UpstreamServerError(message, **extra)
    return BadRequestError(message, status=status, **extra)
