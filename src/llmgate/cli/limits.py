"""Rate-limit and budget options shared by ``llmgate key limits`` and ``llmgate user limits``.

Without options the command shows the current values; each option sets one field, and
``none`` clears it. Values are checked by the same service code as ``/api/keys`` and ``/api/users``.
"""
from __future__ import annotations

from typing import Any, Callable

import click
from click.core import ParameterSource

from ..models.limits import BUDGET_PERIODS, LIMIT_FIELDS

_OPTIONS = (
    ("rpm", int, "Requests per minute."),
    ("tpm", int, "Tokens per minute."),
    ("max_concurrency", int, "Requests in flight at once."),
    ("budget_usd", float, "Money budget in USD per period."),
    ("budget_period", click.Choice(BUDGET_PERIODS), "Budget period (UTC days, Monday weeks)."),
    ("budget_soft_usd", float, "Soft threshold in USD: a log event and webhook once per period."),
)


class _OrNone(click.ParamType):
    """A value of ``inner``, or the word ``none`` to clear the field."""

    def __init__(self, inner: Any) -> None:
        self.inner = click.types.convert_type(inner)
        self.name = f"{self.inner.name}|none"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.lower() == "none":
            return None
        return self.inner.convert(value, param, ctx)


def limit_options(command: Callable) -> Callable:
    for field, kind, help_text in reversed(_OPTIONS):
        command = click.option(f"--{field.replace('_', '-')}", field, type=_OrNone(kind), default=None,
                               help=f"{help_text} 'none' clears it.")(command)
    return command


def edit(row: Any, options: dict[str, Any], *, update: Callable[[Any, dict[str, Any]], Any], title: str) -> None:
    """Apply the limit options given (if any) with ``update(row, changes)``, then show the values."""
    changes = changes_from(options)
    if changes:
        row = update(row, changes)
    show(row, title.format(row=row))


def changes_from(options: dict[str, Any]) -> dict[str, Any]:
    """The fields given on the command line (an option left out is not a request to clear it)."""
    ctx = click.get_current_context()
    return {field: value for field, value in options.items()
            if field in LIMIT_FIELDS and ctx.get_parameter_source(field) == ParameterSource.COMMANDLINE}


def show(row: Any, title: str) -> None:
    click.echo(title)
    for field in LIMIT_FIELDS:
        value = getattr(row, field)
        click.echo(f"  {field:<16} {'-' if value is None else value}")
