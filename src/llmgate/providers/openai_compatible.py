"""OpenAI-compatible servers (vLLM, Ollama, llama.cpp, LM Studio…): the OpenAI provider at another ``api_base``."""
from __future__ import annotations

from typing import Any

from llmgate.providers.base import Deployment
from llmgate.providers.openai import OpenAIProvider


class OpenAICompatibleProvider(OpenAIProvider):
    max_tokens_param = "max_tokens"  # what vLLM, Ollama and llama.cpp all understand

    def _client_options(self, deployment: Deployment) -> dict[str, Any]:
        if not deployment.api_base:
            raise ValueError(f"deployment {deployment.id}: provider openai-compatible needs api_base")
        options = super()._client_options(deployment)
        # Local servers usually take no key, but the SDK refuses to start without one.
        options["api_key"] = deployment.api_key or "not-needed"
        return options
