"""Reading models.yaml: its JSON schema, the checks across entries, and resolution into ``Deployment``s.

Every problem is reported at once, each naming the entry (index and name) and the field, so
an operator can fix a file in one pass (``llmgate models check``).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from llmgate.providers.base import Deployment, Limits, Price
from llmgate.providers.registry import PROVIDERS

ENV_PREFIX = "env:"

_POSITIVE_INT = {"type": ["integer", "null"], "minimum": 1}
_PRICE = {"type": ["number", "null"], "minimum": 0}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "models": {"type": ["array", "null"], "items": {"$ref": "#/$defs/model"}},
    },
    "$defs": {
        "model": {
            "type": "object",
            "required": ["name", "provider", "model"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1, "pattern": r"^\S+$"},
                # Checked against the provider registry below, so a new provider needs no schema edit.
                "provider": {"type": "string", "minLength": 1},
                "model": {"type": "string", "minLength": 1},
                "api_base": {"type": ["string", "null"], "pattern": r"^https?://\S+$"},
                "api_key": {"type": ["string", "null"]},
                "price": {
                    "type": ["object", "null"], "additionalProperties": False,
                    "properties": {"input_per_mtok": _PRICE, "output_per_mtok": _PRICE},
                },
                "limits": {
                    "type": ["object", "null"], "additionalProperties": False,
                    "properties": {"rpm": _POSITIVE_INT, "tpm": _POSITIVE_INT, "max_concurrency": _POSITIVE_INT},
                },
                "timeout_s": {"type": "number", "exclusiveMinimum": 0},
                "fallbacks": {"type": ["array", "null"], "items": {"type": "string", "minLength": 1},
                              "uniqueItems": True},
            },
        },
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


class ModelsFileError(Exception):
    """models.yaml cannot be used; ``problems`` lists every reason, one line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


@dataclass(frozen=True)
class ModelsFile:
    """A valid models.yaml: its deployments, and the keys that name an unset environment variable."""

    deployments: tuple[Deployment, ...]
    missing_keys: Mapping[str, str] = field(default_factory=dict)  # deployment id → variable name
    entries: Mapping[str, str] = field(default_factory=dict)  # deployment id → "models[3] ('name')"

    def missing_key_problems(self) -> list[str]:
        return [f"{self.entries.get(deployment_id, deployment_id)}: api_key: environment variable {variable} "
                "is not set" for deployment_id, variable in self.missing_keys.items()]


def read(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> ModelsFile:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ModelsFileError(source, [f"cannot read the file: {err.strerror or err}"]) from err
    return parse(text, source=source, environ=environ)


def parse(text: str, *, source: str = "models.yaml", environ: Mapping[str, str] | None = None) -> ModelsFile:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ModelsFileError(source, [f"not valid YAML{where}: {getattr(err, 'problem', None) or err}"]) from err
    if data is None:
        data = {"models": []}
    problems = check(data)
    if problems:
        raise ModelsFileError(source, problems)
    return _resolve(data.get("models") or [], os.environ if environ is None else environ)


def check(data: Any) -> list[str]:
    """Every problem in an already-parsed file: its shape first, then what spans entries."""
    shape = sorted(_VALIDATOR.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    problems = [_describe(error, data) for error in shape]
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        return problems
    # Cross checks look at the entries whose own shape is sound, so one pass reports everything.
    broken = {error.absolute_path[1] for error in shape if len(error.absolute_path) >= 2}
    sound = [entry if index not in broken else None for index, entry in enumerate(models)]
    return problems + _cross_check(models, sound)


def _where(models: list[Any], index: int) -> str:
    entry = models[index] if 0 <= index < len(models) else None
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"models[{index}] ({name!r})" if isinstance(name, str) else f"models[{index}]"


def _describe(error: jsonschema.ValidationError, data: Any) -> str:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        message = f"unknown field{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}"
    elif error.validator == "required":
        message = error.message.replace("is a required property", "is required")
    elif error.validator == "pattern" and path and path[-1] == "name":
        message = "must not contain spaces"
    elif error.validator == "pattern" and path and path[-1] == "api_base":
        message = f"{error.instance!r} is not an http(s) URL"
    else:
        message = error.message
    if len(path) >= 2 and path[0] == "models" and isinstance(path[1], int):
        models = data.get("models") if isinstance(data, dict) else []
        field_path = ".".join(str(p) for p in path[2:])
        return f"{_where(models, path[1])}: {field_path + ': ' if field_path else ''}{message}"
    return f"{'.'.join(str(p) for p in path) or 'top level'}: {message}"


def _cross_check(models: list[Any], sound: list[dict[str, Any] | None]) -> list[str]:
    problems: list[str] = []
    names = {entry.get("name") for entry in models if isinstance(entry, dict)}
    for index, entry in enumerate(sound):
        if entry is None:
            continue
        where = _where(models, index)
        if entry["provider"] not in PROVIDERS:
            problems.append(f"{where}: provider: unknown provider {entry['provider']!r} "
                            f"(known: {', '.join(sorted(PROVIDERS))})")
        if entry["provider"] == "openai-compatible" and not entry.get("api_base"):
            problems.append(f"{where}: api_base: is required for provider 'openai-compatible'")
        api_key = entry.get("api_key")
        if isinstance(api_key, str) and api_key.startswith(ENV_PREFIX) and not api_key[len(ENV_PREFIX):].strip():
            problems.append(f"{where}: api_key: 'env:' must be followed by a variable name")
        for fallback in entry.get("fallbacks") or []:
            if fallback == entry["name"]:
                problems.append(f"{where}: fallbacks: a model cannot fall back to itself")
            elif fallback not in names:
                problems.append(f"{where}: fallbacks: no model is named {fallback!r}")
    problems.extend(_fallback_cycles([entry for entry in sound if entry is not None], models))
    return problems


def _fallback_cycles(entries: list[dict[str, Any]], models: list[Any]) -> list[str]:
    """A cycle would let one request bounce between models; report each cycle once."""
    graph: dict[str, list[str]] = {}
    for entry in entries:
        graph.setdefault(entry["name"], [])
        graph[entry["name"]].extend(f for f in entry.get("fallbacks") or [] if f != entry["name"])
    problems, seen_cycles = [], set()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for nxt in graph.get(name, []):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                key = frozenset(cycle)
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    first = next(i for i, e in enumerate(models) if isinstance(e, dict) and e.get("name") == cycle[0])
                    problems.append(f"{_where(models, first)}: fallbacks: cycle {' -> '.join(cycle)}")
            elif state.get(nxt) is None and nxt in graph:
                visit(nxt, path + [nxt])
        state[name] = 2

    for name in graph:
        if state.get(name) is None:
            visit(name, [name])
    return problems


def _resolve(models: list[dict[str, Any]], environ: Mapping[str, str]) -> ModelsFile:
    deployments, missing, pool_sizes, entries = [], {}, {}, {}
    for position, entry in enumerate(models):
        index = pool_sizes.get(entry["name"], 0)
        pool_sizes[entry["name"]] = index + 1
        api_key = entry.get("api_key")
        variable = None
        if isinstance(api_key, str) and api_key.startswith(ENV_PREFIX):
            variable = api_key[len(ENV_PREFIX):].strip()
            api_key = environ.get(variable) or None
        price, limits = entry.get("price") or {}, entry.get("limits") or {}
        deployment = Deployment(
            name=entry["name"], provider=entry["provider"], model=entry["model"], index=index,
            api_base=entry.get("api_base") or None, api_key=api_key,
            price=Price(price.get("input_per_mtok"), price.get("output_per_mtok")),
            limits=Limits(limits.get("rpm"), limits.get("tpm"), limits.get("max_concurrency")),
            timeout_s=float(entry.get("timeout_s") or 60.0),
            fallbacks=tuple(entry.get("fallbacks") or ()),
        )
        if variable and api_key is None:
            missing[deployment.id] = variable
        entries[deployment.id] = _where(models, position)
        deployments.append(deployment)
    return ModelsFile(tuple(deployments), missing, entries)
