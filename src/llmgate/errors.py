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


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    message = error.description or error.name
    details = getattr(error, "data", {}).get("errors") if hasattr(error, "data") else None
    headers = {k: v for k, v in error.get_headers() if k.lower() in {"allow", "retry-after"}}
    return error_response(status, message, code=error.name.lower().replace(" ", "_"), details=details, headers=headers)


def handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error", extra={"error_type": type(error).__name__})
    return error_response(500, "Internal server error; the request id is in the x-request-id header.",
                          code="internal_error")


def init_app(app: Flask) -> None:
    app.register_error_handler(LLMGateError, handle_domain_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
