"""``llmgate models``: check and list models.yaml without starting the server."""
from __future__ import annotations

import os
import sys

import click

from llmgate.gateway.models_file import ModelsFile, ModelsFileError, read


def _default_path() -> str:
    return os.environ.get("LLMGATE_MODELS_FILE") or "models.yaml"


def _load(path: str) -> ModelsFile:
    if not os.path.exists(path):
        raise click.ClickException(f"{path}: no such file (set LLMGATE_MODELS_FILE or pass the path)")
    try:
        return read(path)
    except ModelsFileError as err:
        for problem in err.problems:
            click.echo(f"{path}: {problem}", err=True)
        sys.exit(1)


@click.group("models", help="Check and list the models of models.yaml.")
def models() -> None:
    pass


@models.command("check")
@click.argument("path", required=False)
@click.option("--allow-missing-env", is_flag=True,
              help="Report unset api_key environment variables as warnings, not errors.")
def check(path: str | None, allow_missing_env: bool) -> None:
    """Validate PATH (default: $LLMGATE_MODELS_FILE or ./models.yaml); exit 1 on any problem."""
    path = path or _default_path()
    loaded = _load(path)
    missing = [f"{path}: {problem}" for problem in loaded.missing_key_problems()]
    for line in missing:
        click.echo(("warning: " if allow_missing_env else "") + line, err=True)
    names = {d.name for d in loaded.deployments}
    if missing and not allow_missing_env:
        sys.exit(1)
    click.echo(f"{path}: OK, {len(names)} models, {len(loaded.deployments)} deployments")


@models.command("list")
@click.argument("path", required=False)
def list_models(path: str | None) -> None:
    """One line per deployment: model name, provider, upstream model, key status, fallbacks."""
    path = path or _default_path()
    loaded = _load(path)
    rows = [("MODEL", "DEPLOYMENT", "PROVIDER", "UPSTREAM MODEL", "KEY", "FALLBACKS")]
    for d in loaded.deployments:
        variable = loaded.missing_keys.get(d.id)
        key = f"missing ${variable}" if variable else ("set" if d.api_key else "none")
        rows.append((d.name, d.id, d.provider, d.model, key, ",".join(d.fallbacks) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
