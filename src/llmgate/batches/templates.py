"""Prompt templates for tabular batches: Jinja2 in a sandbox, over one row's columns.

``SandboxedEnvironment`` refuses attribute access to internals (``__class__``, ``__globals__``
…) and ``StrictUndefined`` turns a misspelt column into an error instead of an empty string.
No globals beyond Jinja's harmless defaults are reachable; ``cycler``/``joiner``/``namespace``
are removed too (only the sandbox's size-capped ``range`` stays), so there is nothing to climb from.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment

from ..errors import ValidationError

MAX_TEMPLATE_CHARS = 100_000


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    kept = {"range": env.globals["range"]}
    env.globals.clear()
    env.globals.update(kept)
    return env


@lru_cache(maxsize=256)
def _compile(source: str):
    return environment().from_string(source)


def compile_template(source: str, *, field: str = "template"):
    """The compiled template; 422 when it does not parse."""
    if not isinstance(source, str) or not source.strip():
        raise ValidationError("The prompt template is empty.", details={field: "required"})
    if len(source) > MAX_TEMPLATE_CHARS:
        raise ValidationError("The prompt template is too long.", details={field: f"at most {MAX_TEMPLATE_CHARS} characters"})
    try:
        return _compile(source)
    except TemplateError as error:
        raise ValidationError(f"The {field} does not parse: {error}", details={field: str(error)}) from None


def undeclared_names(source: str) -> set[str]:
    ast = environment().parse(source)
    return set(meta.find_undeclared_variables(ast)) - set(environment().globals)


def check_against_columns(source: str, columns: Iterable[str], *, field: str = "template") -> None:
    """422 naming every variable the template uses that is not a column."""
    compile_template(source, field=field)
    missing = sorted(undeclared_names(source) - set(columns))
    if missing:
        raise ValidationError(
            f"The {field} uses names that are not columns of the file: {', '.join(missing)}.",
            details={field: f"unknown names: {', '.join(missing)}", "columns": ", ".join(columns)},
        )


class RenderError(Exception):
    """A row the template cannot render (a sandbox violation, a missing value…): a row error."""


def render(source: str, row: Mapping[str, Any]) -> str:
    try:
        return _compile(source).render(dict(row))
    except TemplateError as error:  # SecurityError and UndefinedError are TemplateErrors
        raise RenderError(f"template error: {error}") from None
    except Exception as error:  # a filter on a wrong type, a division by zero in the template…
        raise RenderError(f"template error: {type(error).__name__}: {error}") from None
