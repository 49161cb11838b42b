"""The Anthropic provider: the Messages API through the official ``anthropic`` SDK, kept raw."""
from __future__ import annotations

import json
from typing import Any

import anthropic

from llmgate.providers.base import Deployment, Provider, RawResult, RawStream, Usage
from llmgate.providers.errors import BadRequestError
from llmgate.providers.http import http_client, tcp_keepalive_options
from llmgate.providers.sdk_call import Endpoint, SdkErrors, raw_result, raw_stream
from llmgate.providers.sse import event_json

ANTHROPIC_ERRORS = SdkErrors(status=anthropic.APIStatusError, timeout=anthropic.APITimeoutError,
                             connection=anthropic.APIConnectionError, base=anthropic.AnthropicError)


def read_anthropic_usage(content: bytes) -> Usage:
    try:
        return Usage.from_anthropic(json.loads(content).get("usage"))
    except (ValueError, AttributeError):
        return Usage()


class AnthropicUsageSniffer:
    """Input tokens arrive in ``message_start``, the running output count in each ``message_delta``."""

    def __init__(self) -> None:
        self._start: dict[str, Any] = {}
        self.usage = Usage()

    def feed(self, event: bytes) -> None:
        if event.startswith(b"event: message_start"):
            payload = event_json(event) or {}
            self._start = dict(payload.get("message", {}).get("usage") or {})
            self.usage = Usage.from_anthropic(self._start)
        elif event.startswith(b"event: message_delta"):
            payload = event_json(event) or {}
            # A delta's fields are cumulative totals that override message_start's.
            self.usage = Usage.from_anthropic({**self._start, **{k: v for k, v in (payload.get("usage") or {}).items()
                                                                  if v is not None}})


class AnthropicProvider(Provider):
    wire_format = "anthropic"

    def __init__(self, deployment: Deployment) -> None:
        super().__init__(deployment)
        # Tracing off: per-call spans are overhead on the hot path; llmgate has its own metrics.
        # The SDK's own client would set TCP keep-alive probes (a Messages call can be silent for minutes).
        keepalive = tcp_keepalive_options()
        http = http_client(timeout=deployment.timeout_s, socket_options=keepalive)
        self._client = anthropic.Anthropic(api_key=deployment.api_key, base_url=deployment.api_base or None,
                                           max_retries=0, timeout=deployment.timeout_s, open_telemetry=False,
                                           http_client=http)
        # Without a key in models.yaml the SDK finds credentials itself (maybe refreshed per call):
        # only a static key lets its request be built once (sdk_call.Endpoint).
        self._messages = Endpoint(self._client, "/v1/messages", ANTHROPIC_ERRORS, http=http,
                                  prepared=deployment.api_key is not None, socket_options=keepalive)

    def chat(self, body: dict[str, Any], *, stream: bool, timeout: float | None = None) -> RawResult | RawStream:
        response = self._messages.post(body, stream=stream, timeout=timeout or self.deployment.timeout_s)
        if stream:
            return raw_stream(response, AnthropicUsageSniffer())
        return raw_result(response, read_anthropic_usage)

    def embeddings(self, body: dict[str, Any], *, timeout: float | None = None) -> RawResult:
        raise BadRequestError(f"model {self.deployment.name!r} is served by Anthropic, which has no embeddings API")

    def close(self) -> None:
        self._messages.close()
        self._client.close()
