"""One upstream exchange: the client's body in the client's format in, what to send the client out.

When the client speaks the provider's format, bodies and SSE events pass through untouched
(only ``model`` is replaced); otherwise requests, responses and streams are translated.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from llmgate.gateway.translate import requests, responses
from llmgate.gateway.translate.errors import error_event
from llmgate.gateway.translate.streams import (
    AnthropicToOpenAI, OpenAIToAnthropic, StreamTranslator, is_usage_only_chunk, translate_stream,
)
from llmgate.providers.base import Provider, RawResult, RawStream, Usage, WireFormat
from llmgate.providers.errors import BadRequestError, ProviderError


class ReplyStream:
    """SSE bytes for the client, event by event, with the call's ``usage``.

    An upstream failure after the first event cannot change the HTTP status any more, so it is
    sent as an error event in the client's format and kept in ``error``. ``close()`` (call it
    when the client disconnects) closes the upstream connection, which cancels the generation.
    """

    def __init__(self, raw: RawStream, events: Iterator[bytes], *, client_format: WireFormat) -> None:
        self._raw = raw
        self._events = events
        self._client_format = client_format
        self.error: ProviderError | None = None
        self.status = raw.status
        self.content_type = "text/event-stream"

    @property
    def usage(self) -> Usage:
        return self._raw.usage

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._events
        except ProviderError as err:
            self.error = err
            yield error_event(err, self._client_format)
        finally:
            self._raw.close()

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> ReplyStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def chat(provider: Provider, *, client_format: WireFormat, body: dict[str, Any],
         timeout: float | None = None) -> RawResult | ReplyStream:
    """Run one chat call on ``provider`` for a client speaking ``client_format``.

    Raises ``ProviderError`` (the upstream refused or failed before answering, or the body
    cannot be translated); the caller retries or falls back on ``err.retryable``. ``body`` is
    not modified, so the same body can be sent again to another deployment.
    """
    model = provider.deployment.model
    stream = bool(body.get("stream"))
    if client_format == provider.wire_format:
        if client_format == "openai" and stream:
            return _openai_passthrough_stream(provider, body, model=model, timeout=timeout)
        upstream = provider.chat({**body, "model": model}, stream=stream, timeout=timeout)
        if isinstance(upstream, RawStream):
            return ReplyStream(upstream, _passed_through(upstream, drop_usage=False), client_format=client_format)
        return upstream

    if client_format == "openai":
        native = requests.openai_to_anthropic(body, model=model)
    else:
        native = requests.anthropic_to_openai(body, model=model, max_tokens_param=provider.max_tokens_param)
    upstream = provider.chat(native, stream=stream, timeout=timeout)
    if isinstance(upstream, RawStream):
        translator: StreamTranslator = (
            AnthropicToOpenAI(include_usage=_client_wants_usage(body)) if client_format == "openai"
            else OpenAIToAnthropic())
        return ReplyStream(upstream, translate_stream(upstream, translator), client_format=client_format)
    translated = (responses.anthropic_to_openai(json.loads(upstream.body)) if client_format == "openai"
                  else responses.openai_to_anthropic(json.loads(upstream.body)))
    return RawResult(status=upstream.status, body=json.dumps(translated, ensure_ascii=False).encode(),
                     usage=upstream.usage)


def embeddings(provider: Provider, *, body: dict[str, Any], timeout: float | None = None) -> RawResult:
    """OpenAI-format embeddings, passed through; Anthropic deployments raise BadRequestError."""
    if provider.wire_format != "openai":
        raise BadRequestError(f"model {provider.deployment.name!r} does not support embeddings")
    return provider.embeddings({**body, "model": provider.deployment.model}, timeout=timeout)


def with_forced_usage(body: dict[str, Any], *, model: str) -> tuple[dict[str, Any], bool]:
    """The upstream body for an OpenAI stream, always asking for usage (we must account for it),
    and whether the client itself asked (if not, its usage-only chunk must be dropped)."""
    options = body.get("stream_options") or {}
    wanted = bool(options.get("include_usage"))
    if wanted:
        return {**body, "model": model}, True
    return {**body, "model": model, "stream_options": {**options, "include_usage": True}}, False


def _openai_passthrough_stream(provider: Provider, body: dict[str, Any], *, model: str,
                               timeout: float | None) -> ReplyStream:
    upstream_body, client_wants_usage = with_forced_usage(body, model=model)
    upstream = provider.chat(upstream_body, stream=True, timeout=timeout)
    assert isinstance(upstream, RawStream)
    return ReplyStream(upstream, _passed_through(upstream, drop_usage=not client_wants_usage), client_format="openai")


def _passed_through(upstream: RawStream, *, drop_usage: bool) -> Iterator[bytes]:
    """The upstream's events as received: everything that arrived together leaves together (one
    write to the client instead of one per event), never waiting for more."""
    while True:
        try:
            batch = upstream.next_batch()
        except StopIteration:
            return
        if drop_usage:
            batch = [event for event in batch if not is_usage_only_chunk(event)]
        if batch:
            yield batch[0] if len(batch) == 1 else b"".join(batch)


def _client_wants_usage(body: dict[str, Any]) -> bool:
    return bool((body.get("stream_options") or {}).get("include_usage"))

