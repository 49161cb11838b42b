"""The gateway's service: chat and embeddings with routing, retries, fallbacks and accounting.

Called by the ``/v1`` views (any client format, streamed or not) and by batch jobs
(``complete_chat`` / ``embed``: OpenAI format, whole answers, no Flask request needed — only an
app context). Raises domain errors (``llmgate.errors``) and ``ProviderError``s; knows no HTTP.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, has_app_context

from llmgate.after_response import defer
from llmgate.auth.principal import Principal
from llmgate.errors import BadRequest, NotFound
from llmgate.gateway import exchange
from llmgate.gateway.attempt import Attempt, estimate_tokens
from llmgate.gateway.catalog import Catalog, get_catalog
from llmgate.gateway.health import get_health
from llmgate.gateway.router import RetryPolicy, Routed, route
from llmgate.providers.base import Provider, RawResult, WireFormat
from llmgate.providers.errors import ConnectionFailed

POLICY_KEY = "llmgate.retry_policy"


# --- checks shared by every caller ----------------------------------------------------------------

def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_body")
    return body


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("You must provide a model parameter.", code="missing_model", param="model")
    return model


def check_chat_body(body: Any) -> str:
    """The model of a chat body (either format), or ``BadRequest`` naming what is missing."""
    model = require_model(require_object(body))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array.", code="missing_messages", param="messages")
    return model


def check_embeddings_body(body: Any) -> str:
    model = require_model(require_object(body))
    if body.get("input") in (None, "", []):
        raise BadRequest("'input' must be a string or a non-empty array.", code="missing_input", param="input")
    return model


def resolve_model(catalog: Catalog, principal: Principal, model: str) -> None:
    """404 for a model that is unknown *or* not allowed to this key, as OpenAI does: the same
    answer for both, so a restricted key cannot probe which models exist."""
    if model not in catalog or not principal.may_use(model):
        raise NotFound(f"The model `{model}` does not exist or you do not have access to it.",
                       code="model_not_found", param="model")


def deadline_after(timeout_s: float | None) -> float | None:
    return None if timeout_s is None else time.monotonic() + timeout_s


def _policy(app: Flask) -> RetryPolicy:
    policy = app.extensions.get(POLICY_KEY)
    if policy is None:
        policy = app.extensions[POLICY_KEY] = RetryPolicy.from_config(app.config)
    return policy


# --- streams ----------------------------------------------------------------------------------------

class StreamReply:
    """The client's SSE events of a routed stream, finishing the attempt exactly once: when the
    stream ends (success, or the upstream broke: an error event was sent), or when ``close()``
    is called early — the WSGI server does that when the client goes away, which also closes
    the upstream connection and so cancels the generation."""

    def __init__(self, reply: exchange.ReplyStream, events: Iterator[bytes], first: bytes, attempt: Attempt,
                 app: Flask) -> None:
        self._reply = reply
        self._events = events
        self._first: bytes | None = first
        self.attempt = attempt
        self._app = app
        self.finished = False

    @property
    def headers(self) -> dict[str, str]:
        return self.attempt.admission.headers

    def __iter__(self) -> StreamReply:
        return self

    def __next__(self) -> bytes:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if self.finished:
            raise StopIteration
        try:
            return next(self._events)
        except StopIteration:
            self._finish(completed=True)
            raise
        except BaseException:
            self._finish(completed=False)
            raise

    def close(self) -> None:
        self._finish(completed=False)

    def _finish(self, *, completed: bool) -> None:
        if self.finished:
            return
        self.finished = True
        close = getattr(self._events, "close", None)
        if close is not None:
            close()
        self._reply.close()
        # The client has had every byte it will get: the attempt's close can wait (after_response).
        defer(self._settle, completed, self._reply.usage)

    def _settle(self, completed: bool, usage: Any) -> None:
        if not has_app_context():
            with self._app.app_context():
                self._settle(completed, usage)
            return
        if self._reply.error is not None:
            self.attempt.fail(self._reply.error, usage, later=True)
        elif completed:
            self.attempt.succeed(usage, later=True)
        else:
            self.attempt.cancel(usage, later=True)


def _open_stream(provider: Provider, *, client_format: WireFormat, body: dict[str, Any], timeout: float
                 ) -> tuple[exchange.ReplyStream, Iterator[bytes], bytes]:
    """Start a stream and wait for its first event, so that a failure before the first byte
    reaches the client can still be retried elsewhere."""
    reply = exchange.chat(provider, client_format=client_format, body=body, timeout=timeout)
    assert isinstance(reply, exchange.ReplyStream)
    events = iter(reply)
    try:
        first = next(events, None)
    except BaseException:
        reply.close()
        raise
    if reply.error is not None or first is None:
        reply.close()
        raise reply.error or ConnectionFailed("the upstream closed the stream before sending anything")
    return reply, events, first


# --- chat -------------------------------------------------------------------------------------------

@dataclass(slots=True)
class ChatAnswer:
    """A routed chat call: a whole answer (``result``) or a stream (``stream``).

    With ``settle_later`` the whole answer's attempt is still open: call ``finish()`` once the
    answer is sent (the views do it when the response closes), so the accounting round trip
    is not on the caller's clock.
    """

    result: RawResult | None
    stream: StreamReply | None
    upstream_s: float
    headers: dict[str, str]
    attempt: Attempt | None = None
    app: Flask | None = None

    def finish(self) -> None:
        if self.attempt is None or self.attempt.finished or self.result is None:
            return
        if has_app_context():
            self.attempt.succeed(self.result.usage, later=True)
        else:
            with self.app.app_context():
                self.attempt.succeed(self.result.usage, later=True)


def chat(*, principal: Principal, body: dict[str, Any], client_format: WireFormat, request_id: str,
         batch_id: str | None = None, timeout_s: float | None = None, body_size: int | None = None,
         settle_later: bool = False) -> ChatAnswer:
    """One chat request in ``client_format``; ``body`` as the client sent it (already checked)."""
    app = current_app._get_current_object()
    catalog = get_catalog(app)
    model = body["model"]
    resolve_model(catalog, principal, model)
    common = dict(catalog=catalog, health=get_health(app), policy=_policy(app), model=model, principal=principal,
                  request_id=request_id, batch_id=batch_id, estimated_tokens=estimate_tokens(body, body_size),
                  deadline=deadline_after(timeout_s))
    if body.get("stream"):
        routed: Routed[Any] = route(
            **common, keep_open=True, stream=True,
            call=lambda provider, timeout: _open_stream(provider, client_format=client_format, body=body,
                                                       timeout=timeout))
        reply, events, first = routed.result
        stream = StreamReply(reply, events, first, routed.attempt, app)
        return ChatAnswer(None, stream, routed.upstream_s, routed.attempt.admission.headers)
    routed = route(**common, keep_open=settle_later, call=lambda provider, timeout: exchange.chat(
        provider, client_format=client_format, body=body, timeout=timeout))
    return ChatAnswer(routed.result, None, routed.upstream_s, routed.attempt.admission.headers,
                      routed.attempt if settle_later else None, app)


def complete_chat(*, principal: Principal, body: dict[str, Any], request_id: str,
                  batch_id: str | None = None, timeout_s: float | None = None) -> dict[str, Any]:
    """An OpenAI-format chat body → the OpenAI chat completion (never streamed), for batch jobs."""
    check_chat_body(body)
    if body.get("stream"):
        body = {key: value for key, value in body.items() if key not in ("stream", "stream_options")}
    answer = chat(principal=principal, body=body, client_format="openai", request_id=request_id,
                  batch_id=batch_id, timeout_s=timeout_s)
    assert answer.result is not None
    return json.loads(answer.result.body)


# --- embeddings -------------------------------------------------------------------------------------

def embeddings(*, principal: Principal, body: dict[str, Any], request_id: str, batch_id: str | None = None,
               timeout_s: float | None = None, body_size: int | None = None,
               settle_later: bool = False) -> ChatAnswer:
    """Embeddings routed like chat; the answer is a ``ChatAnswer`` with a whole ``result``."""
    app = current_app._get_current_object()
    catalog = get_catalog(app)
    model = body["model"]
    resolve_model(catalog, principal, model)
    routed = route(catalog=catalog, health=get_health(app), policy=_policy(app), model=model, principal=principal,
                   request_id=request_id, batch_id=batch_id, estimated_tokens=estimate_tokens(body, body_size),
                   deadline=deadline_after(timeout_s), keep_open=settle_later,
                   call=lambda provider, timeout: exchange.embeddings(provider, body=body, timeout=timeout))
    return ChatAnswer(routed.result, None, routed.upstream_s, routed.attempt.admission.headers,
                      routed.attempt if settle_later else None, app)


def embed(*, principal: Principal, body: dict[str, Any], request_id: str, batch_id: str | None = None,
          timeout_s: float | None = None) -> dict[str, Any]:
    """An OpenAI-format embeddings body → the OpenAI embeddings response, for batch jobs."""
    check_embeddings_body(body)
    answer = embeddings(principal=principal, body=body, request_id=request_id, batch_id=batch_id,
                        timeout_s=timeout_s)
    assert answer.result is not None
    return json.loads(answer.result.body)
