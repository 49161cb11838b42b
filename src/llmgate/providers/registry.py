"""``build_provider``: provider name in models.yaml → provider class, imported only when first used."""
from __future__ import annotations

import importlib

from llmgate.providers.base import Deployment, Provider

# Adding a provider: one module with a Provider subclass, and one line here.
PROVIDERS: dict[str, str] = {
    "openai": "llmgate.providers.openai:OpenAIProvider",
    "anthropic": "llmgate.providers.anthropic:AnthropicProvider",
    "openai-compatible": "llmgate.providers.openai_compatible:OpenAICompatibleProvider",
}


def provider_class(name: str) -> type[Provider]:
    try:
        target = PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}; known: {', '.join(sorted(PROVIDERS))}") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_provider(deployment: Deployment) -> Provider:
    return provider_class(deployment.provider)(deployment)
