"""The OpenAI provider: chat completions and embeddings through the official ``openai`` SDK, kept raw."""
from __future__ import annotations

import json
from typing import Any

import openai

from llmgate.providers.base import Deployment, Provider, RawResult, RawStream, Usage
from llmgate.providers.http import http_client
from llmgate.providers.sdk_call import SdkErrors, post_json, post_stream
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
        self._client = openai.OpenAI(**self._client_options(deployment),
                                     http_client=http_client(timeout=deployment.timeout_s))

    def _client_options(self, deployment: Deployment) -> dict[str, Any]:
        return {"api_key": deployment.api_key, "base_url": deployment.api_base or None, "max_retries": 0,
                "timeout": deployment.timeout_s}

    def chat(self, body: dict[str, Any], *, stream: bool, timeout: float | None = None) -> RawResult | RawStream:
        timeout = timeout or self.deployment.timeout_s
        if stream:
            return post_stream(self._client, "/chat/completions", body, timeout=timeout, errors=OPENAI_ERRORS,
                               sniffer=OpenAIUsageSniffer())
        return post_json(self._client, "/chat/completions", body, timeout=timeout, errors=OPENAI_ERRORS,
                         read_usage=read_openai_usage)

    def embeddings(self, body: dict[str, Any], *, timeout: float | None = None) -> RawResult:
        return post_json(self._client, "/embeddings", body, timeout=timeout or self.deployment.timeout_s,
                         errors=OPENAI_ERRORS, read_usage=read_openai_usage)

    def close(self) -> None:
        self._client.close()
