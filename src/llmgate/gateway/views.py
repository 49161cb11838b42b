"""The ``/v1`` endpoints: OpenAI- and Anthropic-compatible chat, embeddings and the model list.

A plain blueprint (no flask-restx) to keep the hot path short: authenticate, parse the body
once, call the service, answer its bytes. Errors come back in the caller's format — OpenAI's
``{"error": ...}``, or Anthropic's ``{"type": "error", ...}`` on ``/v1/messages`` and on
``/v1/models`` when the request carries an ``anthropic-version`` header.
"""
from __future__ import annotations

import json
import logging
import math
import time
from datetime import datetime, timezone
from functools import partial
from typing import Any

from flask import Blueprint, Flask, Response, g, request

from llmgate.after_response import defer
from llmgate.auth.principal import Principal
from llmgate.auth.v1 import authenticate
from llmgate.errors import BadRequest, LLMGateError, NotFound, error_response
from llmgate.gateway import service
from llmgate.gateway.catalog import Catalog, get_catalog
from llmgate.providers.base import WireFormat
from llmgate.providers.errors import ProviderError

bp = Blueprint("v1_gateway", __name__, url_prefix="/v1")
log = logging.getLogger(__name__)

TIMEOUT_HEADER = "x-llmgate-timeout"
OVERHEAD_HEADER = "x-llmgate-overhead-ms"
_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# OpenAI's error codes for the vocabulary's kinds where they differ from the kind's name.
_OPENAI_CODES = {"rate_limited": "rate_limit_exceeded", "context_too_long": "context_length_exceeded",
                 "not_found": "model_not_found", "authentication": "upstream_authentication_failed",
                 "permission": "upstream_permission_denied"}
# Kinds whose upstream message describes llmgate's provider credentials (providers quote part of
# the key): the caller gets a fixed message, the operator the upstream's in the log.
_CREDENTIAL_KINDS = {"authentication": "rejected llmgate's credentials",
                     "permission": "refused llmgate's credentials access"}


# --- plumbing ---------------------------------------------------------------------------------------

def _family() -> str:
    path = request.path
    if path.startswith("/v1/messages") or (path.startswith("/v1/models") and "anthropic-version" in request.headers):
        return "anthropic"
    return "openai"


def _authenticate() -> Principal:
    principal = authenticate(request)
    g.principal = principal  # the access log carries user and key ids
    return principal


def _read_body() -> tuple[Any, int]:
    raw = request.get_data(cache=False)
    try:
        return json.loads(raw), len(raw)
    except ValueError:
        raise BadRequest("The request body is not valid JSON.", code="invalid_json") from None


def _timeout() -> float | None:
    value = request.headers.get(TIMEOUT_HEADER)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not (0 < seconds < math.inf):
        raise BadRequest(f"{TIMEOUT_HEADER} must be a positive number of seconds.", code="invalid_timeout")
    return seconds


def _answer(body: bytes, status: int, headers: dict[str, str]) -> Response:
    response = Response(body, status=status, content_type="application/json")
    if headers:
        response.headers.update(headers)
    return response


def _whole(answer: service.ChatAnswer) -> Response:
    assert answer.result is not None
    response = _answer(answer.result.body, answer.result.status, answer.headers)
    # The attempt's close (health, metrics, the usage event) runs once the answer is on its way,
    # after the other answers ready to go (after_response).
    response.call_on_close(partial(defer, answer.finish))
    return response


@bp.after_request
def _stamp_overhead(response: Response) -> Response:
    # For a stream this runs once the first upstream event is in hand: overhead up to the first byte.
    started = g.get("request_started")
    if started is not None:
        overhead = time.perf_counter() - started - g.get("upstream_s", 0.0)
        response.headers[OVERHEAD_HEADER] = f"{max(overhead, 0.0) * 1000:.3f}"
    return response


@bp.errorhandler(LLMGateError)
def _domain_error(error: LLMGateError) -> Response:
    return error_response(error.status, error.message, code=error.code, details=error.details,
                          headers=error.headers, param=error.param, family=_family())


@bp.errorhandler(ProviderError)
def _provider_error(error: ProviderError) -> Response:
    headers = {}
    message = error.message
    if error.kind in _CREDENTIAL_KINDS and error.upstream_status is not None:
        log.error("upstream refused llmgate's provider credentials",
                  extra={"error_kind": error.kind, "upstream_status": error.upstream_status,
                         "upstream_message": error.message})
        message = (f"The upstream provider {_CREDENTIAL_KINDS[error.kind]} for this model "
                   f"(HTTP {error.upstream_status}); an administrator must fix its api_key in models.yaml.")
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
        headers["retry-after-ms"] = str(int(error.retry_after * 1000))
    return error_response(error.status, message, code=_OPENAI_CODES.get(error.kind, error.kind),
                          headers=headers, family=_family())


# --- chat -------------------------------------------------------------------------------------------

def _chat(client_format: WireFormat) -> Response:
    principal = _authenticate()
    body, size = _read_body()
    service.check_chat_body(body)
    answer = service.chat(principal=principal, body=body, client_format=client_format,
                          request_id=g.request_id, timeout_s=_timeout(), body_size=size, settle_later=True)
    g.upstream_s = answer.upstream_s
    if answer.stream is not None:
        response = Response(answer.stream, status=200, mimetype="text/event-stream", headers=_STREAM_HEADERS)
        if answer.headers:
            response.headers.update(answer.headers)
        return response
    return _whole(answer)


@bp.post("/chat/completions")
def chat_completions() -> Response:
    return _chat("openai")


@bp.post("/messages")
def messages() -> Response:
    return _chat("anthropic")


@bp.post("/embeddings")
def embeddings() -> Response:
    principal = _authenticate()
    body, size = _read_body()
    service.check_embeddings_body(body)
    answer = service.embeddings(principal=principal, body=body, request_id=g.request_id, timeout_s=_timeout(),
                                body_size=size, settle_later=True)
    g.upstream_s = answer.upstream_s
    return _whole(answer)


# --- models -----------------------------------------------------------------------------------------

def _visible(catalog: Catalog, principal: Principal) -> list[str]:
    return [name for name in catalog.names() if principal.may_use(name)]


def _model_entry(catalog: Catalog, name: str, family: str, created: int) -> dict[str, Any]:
    if family == "anthropic":
        return {"type": "model", "id": name, "display_name": name,
                "created_at": datetime.fromtimestamp(created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return {"id": name, "object": "model", "created": created, "owned_by": catalog.deployments(name)[0].provider}


@bp.get("/models")
def list_models() -> Response:
    principal = _authenticate()
    catalog = get_catalog()
    family = _family()
    names = _visible(catalog, principal)
    if family == "anthropic":
        names, has_more = _anthropic_page(names)
        entries = [_model_entry(catalog, name, family, catalog.loaded_at) for name in names]
        body: dict[str, Any] = {"data": entries, "has_more": has_more,
                                "first_id": entries[0]["id"] if entries else None,
                                "last_id": entries[-1]["id"] if entries else None}
    else:  # OpenAI's model list has no paging
        body = {"object": "list", "data": [_model_entry(catalog, name, family, catalog.loaded_at) for name in names]}
    return _answer(json.dumps(body).encode(), 200, {})


def _anthropic_page(names: list[str]) -> tuple[list[str], bool]:
    """Anthropic's paging (``limit`` 1-1000, default 20; ``after_id`` or ``before_id``) over
    the catalog's order: the page and whether more lie in the direction of travel."""
    raw = request.args.get("limit", "20")
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        raise BadRequest(f"limit must be an integer between 1 and 1000, got {raw!r}.", param="limit")
    after, before = request.args.get("after_id"), request.args.get("before_id")
    if after is not None and before is not None:
        raise BadRequest("Give after_id or before_id, not both.", param="before_id")
    for param, cursor in (("after_id", after), ("before_id", before)):
        if cursor is not None and cursor not in names:
            raise BadRequest(f"{param} {cursor!r} is not a model in this list.", param=param)
    if before is not None:
        end = names.index(before)
        return names[max(0, end - limit):end], end > limit
    start = names.index(after) + 1 if after is not None else 0
    return names[start:start + limit], len(names) > start + limit


@bp.get("/models/<path:model_id>")
def get_model(model_id: str) -> Response:
    principal = _authenticate()
    catalog = get_catalog()
    if model_id not in catalog or not principal.may_use(model_id):
        raise NotFound(f"The model `{model_id}` does not exist or you do not have access to it.",
                       code="model_not_found", param="model")
    entry = _model_entry(catalog, model_id, _family(), catalog.loaded_at)
    return _answer(json.dumps(entry).encode(), 200, {})


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
