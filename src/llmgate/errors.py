"""Domain errors and the handlers that shape them for each API family.

Services raise :class:`LLMGateError` subclasses and know nothing of HTTP. One handler turns
them (and Werkzeug's HTTP errors: 404, 405, 413, 415 …) into JSON in the caller's format:
OpenAI ``{"error": {...}}`` under ``/v1``, Anthropic ``{"type": "error", ...}`` on
``/v1/messages``, and ``{"message", "code", "errors"}`` everywhere else. Never an HTML page.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class LLMGateError(Exception):
    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
        status: int | None = None,
        param: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}
        self.param = param
        if code:
            self.code = code
        if status:
            self.status = status


class BadRequest(LLMGateError):
    status, code = 400, "bad_request"


class ValidationError(BadRequest):
    """Input that parsed but is wrong; ``details`` maps each field to what is wrong with it."""

    status, code = 422, "validation_error"


class Unauthorized(LLMGateError):
    status, code = 401, "unauthorized"


class Forbidden(LLMGateError):
    status, code = 403, "forbidden"


class NotFound(LLMGateError):
    status, code = 404, "not_found"


class Conflict(LLMGateError):
    status, code = 409, "conflict"


class PayloadTooLarge(LLMGateError):
    status, code = 413, "payload_too_large"


class RateLimited(LLMGateError):
    status, code = 429, "rate_limited"


class QuotaExceeded(RateLimited):
    """A budget is spent: 429 with OpenAI's ``insufficient_quota`` type."""

    code = "insufficient_quota"


class ServiceUnavailable(LLMGateError):
    status, code = 503, "service_unavailable"


class UpstreamError(LLMGateError):
    status, code = 502, "upstream_error"


# --- rendering -----------------------------------------------------------------------------

_OPENAI_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 409: "invalid_request_error", 413: "invalid_request_error",
    415: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 415: "invalid_request_error",
    422: "invalid_request_error", 429: "rate_limit_error", 529: "overloaded_error",
}


def api_family(path: str) -> str:
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return "anthropic"
    if path == "/v1" or path.startswith("/v1/"):
        return "openai"
    return "llmgate"


def error_body(family: str, status: int, message: str, *, code: str, details: dict | None = None,
               param: str | None = None) -> dict[str, Any]:
    if family == "openai":
        kind = "insufficient_quota" if code == "insufficient_quota" else _OPENAI_TYPES.get(
            status, "api_error" if status < 500 or status == 500 else "server_error")
        return {"error": {"message": message, "type": kind, "param": param, "code": code}}
    if family == "anthropic":
        kind = _ANTHROPIC_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    body: dict[str, Any] = {"message": message, "code": code}
    if details:
        body["errors"] = details
    return body


def error_response(status: int, message: str, *, code: str, details: dict | None = None,
                   headers: dict[str, str] | None = None, param: str | None = None,
                   family: str | None = None) -> Response:
    family = family or api_family(request.path)
    response = Response(
        json.dumps(error_body(family, status, message, code=code, details=details, param=param)),
        status=status,
        mimetype="application/json",
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def handle_domain_error(error: LLMGateError) -> Response:
    return error_response(error.status, error.message, code=error.code, details=error.details,
                          headers=error.headers, param=error.param)


# Werkzeug names a few errors in words nobody greps for; use the domain errors' codes.
_HTTP_CODES = {413: "payload_too_large"}


def _json_parse_error(error: BaseException) -> ValueError | None:
    cause: BaseException | None = error
    for _ in range(3):  # Flask's BadRequest <- Werkzeug's BadRequest <- the decoder's ValueError
        cause = cause.__cause__ or cause.__context__ if cause is not None else None
        if isinstance(cause, ValueError):
            return cause
    return None


def _http_error_parts(error: HTTPException) -> tuple[int, str, str, dict | None, dict[str, str]]:
    status = error.code or 500
    message = error.description or error.name
    if status == 400 and (parse_error := _json_parse_error(error)) is not None:
        # Flask's get_json() hides the parse error behind a generic sentence outside debug mode.
        message = f"The request body is not valid JSON: {parse_error}"
    data = getattr(error, "data", None)
    details = data.get("errors") if isinstance(data, dict) else None
    if isinstance(data, dict) and data.get("message") and status in (400, 422):
        message = str(data["message"])  # restx's validation failure says what failed
    headers = {k: v for k, v in error.get_headers() if k.lower() in {"allow", "retry-after", "www-authenticate"}}
    code = _HTTP_CODES.get(status) or error.name.lower().replace(" ", "_")
    return status, message, code, details, headers


def handle_http_exception(error: HTTPException) -> Response:
    status, message, code, details, headers = _http_error_parts(error)
    return error_response(status, message, code=code, details=details, headers=headers)


def handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error", extra={"error_type": type(error).__name__})
    return error_response(500, "Internal server error; the request id is in the x-request-id header.",
                          code="internal_error")


def handle_redis_unavailable(error: Exception) -> Response:
    # Keys, limits and revocations live in Redis: without it llmgate cannot decide safely,
    # so it answers 503 (retryable) rather than a 500 that reads like a bug.
    log.error("redis unavailable", extra={"error_type": type(error).__name__})
    return error_response(503, "A dependency (Redis) is unavailable; retry shortly.", code="service_unavailable",
                          headers={"Retry-After": "1"})


def init_app(app: Flask) -> None:
    import redis

    app.register_error_handler(LLMGateError, handle_domain_error)
    app.register_error_handler(redis.exceptions.ConnectionError, handle_redis_unavailable)
    app.register_error_handler(redis.exceptions.TimeoutError, handle_redis_unavailable)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)


def init_api(api: Any) -> None:
    """Make a flask-restx ``Api`` answer errors in the same shapes as the rest of the app.

    restx routes every error raised under its routes through its own handler, which would
    answer ``{"message"}`` alone (and let ``abort()``'s ``data`` override whatever we return).
    Handlers registered here build our body and put it on ``error.data``, the one thing restx
    always serialises as is. Exceptions that are neither HTTP nor domain errors fall through to
    the app's handler (restx re-raises them because ``PROPAGATE_EXCEPTIONS`` is on).
    """

    def as_restx(error: Exception, response: Response):
        error.data = response.get_json()  # type: ignore[attr-defined]
        headers = {k: v for k, v in response.headers.items() if k.lower() not in {"content-type", "content-length"}}
        return error.data, response.status_code, headers

    # restx lists each handler under the spec's global ``responses`` with its docstring as the
    # description, which Swagger 2.0 requires: without one /swagger.json is not a valid spec.
    @api.errorhandler(LLMGateError)
    def _domain_error(error: LLMGateError):
        """An llmgate error: JSON with message, code and (for 422) errors per field."""
        return as_restx(error, handle_domain_error(error))

    @api.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        """An HTTP error (404, 405, 413, 415 …) in the same JSON shape."""
        return as_restx(error, handle_http_exception(error))
