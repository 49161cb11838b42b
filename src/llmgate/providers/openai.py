"""The OpenAI provider: chat completions and embeddings through the official ``openai`` SDK, kept raw."""
from __future__ import annotations

import json
from typing import Any

import openai

from llmgate.providers.base import Deployment, Provider, RawResult, RawStream, Usage
from llmgate.providers.http import http_client
from llmgate.providers.sdk_call import Endpoint, SdkErrors, raw_result, raw_stream
from llmgate.providers.sse import event_json

OPENAI_ERRORS = SdkErrors(status=openai.APIStatusError, timeout=openai.APITimeoutError,
                          connection=openai.APIConnectionError, base=openai.OpenAIError)


def read_openai_usage(content: bytes) -> Usage:
    try:
        return Usage.from_openai(json.loads(content).get("usage"))
    except (ValueError, AttributeError):
        return Usage()


class OpenAIUsageSniffer:
    """Only chunks with a ``"usage":{`` object are parsed: with include_usage that is the last one."""

    def __init__(self) -> None:
        self.usage = Usage()

    def feed(self, event: bytes) -> None:
        at = event.find(b'"usage":')
        if at == -1:
            return
        rest = event[at + 8:at + 10].lstrip()
        if rest.startswith(b"{"):
            payload = event_json(event)
            if isinstance(payload, dict) and payload.get("usage"):
                self.usage = Usage.from_openai(payload["usage"])


class OpenAIProvider(Provider):
    wire_format = "openai"
    max_tokens_param = "max_completion_tokens"

    def __init__(self, deployment: Deployment) -> None:
        super().__init__(deployment)
        options = self._client_options(deployment)
        http = http_client(timeout=deployment.timeout_s)
        self._client = openai.OpenAI(**options, http_client=http)
        # A key from models.yaml is static: the SDK's request is built once per path (sdk_call.Endpoint).
        prepared = options.get("api_key") is not None
        self._chat = Endpoint(self._client, "/chat/completions", OPENAI_ERRORS, http=http, prepared=prepared)
        self._embeddings = Endpoint(self._client, "/embeddings", OPENAI_ERRORS, http=http, prepared=prepared)

    def _client_options(self, deployment: Deployment) -> dict[str, Any]:
        return {"api_key": deployment.api_key, "base_url": deployment.api_base or None, "max_retries": 0,
                "timeout": deployment.timeout_s}

    def chat(self, body: dict[str, Any], *, stream: bool, timeout: float | None = None) -> RawResult | RawStream:
        response = self._chat.post(body, stream=stream, timeout=timeout or self.deployment.timeout_s)
        if stream:
            return raw_stream(response, OpenAIUsageSniffer())
        return raw_result(response, read_openai_usage)

    def embeddings(self, body: dict[str, Any], *, timeout: float | None = None) -> RawResult:
        response = self._embeddings.post(body, stream=False, timeout=timeout or self.deployment.timeout_s)
        return raw_result(response, read_openai_usage)

    def close(self) -> None:
        self._chat.close()
        self._embeddings.close()
        self._client.close()
