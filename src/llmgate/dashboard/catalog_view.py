"""What the dashboard shows about the configured models: names for pickers, rows for the Models page."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from ..gateway.catalog import EXTENSION_KEY, get_catalog


def model_names() -> list[str]:
    """Names clients may send as ``model`` (empty when the gateway has no catalog loaded)."""
    if EXTENSION_KEY not in current_app.extensions:
        return []
    return sorted(get_catalog().names())


@dataclass(frozen=True)
class DeploymentRow:
    name: str
    deployment_id: str
    provider: str
    upstream_model: str
    api_base: str | None
    input_per_mtok: float | None
    output_per_mtok: float | None
    rpm: int | None
    tpm: int | None
    max_concurrency: int | None
    fallbacks: tuple[str, ...]
    missing_key: str | None
    health: Any  # the gateway's health for this deployment, or None when it has not seen it


def deployment_rows(health_by_id: dict[str, Any]) -> list[DeploymentRow]:
    if EXTENSION_KEY not in current_app.extensions:
        return []
    catalog = get_catalog()
    rows = []
    for d in catalog.deployments():
        rows.append(DeploymentRow(
            name=d.name, deployment_id=d.id, provider=d.provider, upstream_model=d.model, api_base=d.api_base,
            input_per_mtok=d.price.input_per_mtok, output_per_mtok=d.price.output_per_mtok,
            rpm=d.limits.rpm, tpm=d.limits.tpm, max_concurrency=d.limits.max_concurrency,
            fallbacks=d.fallbacks, missing_key=catalog.missing_keys.get(d.id), health=health_by_id.get(d.id)))
    return rows
