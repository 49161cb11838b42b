"""Reading a JSON request body against a flask-restx model, with errors in llmgate's shape.

restx's own validation answers ``{"errors", "message"}`` without a ``code``; this raises
``llmgate.errors`` instead, so a bad body is a 415 (not JSON), 400 (not an object) or 422
naming each field and why (text with a NUL character, which PostgreSQL cannot store, is a 422
too). Optional fields may be ``null`` (meaning "unset" / "clear"); the services decide whether
null makes sense for a given field.
"""
from __future__ import annotations

import copy
from typing import Any

from flask import request
from flask_restx import Model
from jsonschema import Draft4Validator

from ..errors import BadRequest, LLMGateError, ValidationError

# Keyed by id(): restx models are dicts (unhashable) defined once at import, so ids are stable.
_VALIDATORS: dict[int, Draft4Validator] = {}


def _validator(model: Model) -> Draft4Validator:
    validator = _VALIDATORS.get(id(model))
    if validator is None:
        schema = copy.deepcopy(model._schema)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            if name not in required and isinstance(prop.get("type"), str):
                prop["type"] = [prop["type"], "null"]
                if "enum" in prop:
                    prop["enum"] = [*prop["enum"], None]
        validator = _VALIDATORS[id(model)] = Draft4Validator(schema)
    return validator


def _field_of(error) -> str:
    if error.path:
        return ".".join(str(part) for part in error.path)
    if error.validator == "required":
        return error.message.split("'")[1] if "'" in error.message else "body"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return ", ".join(extra) or "body"
    return "body"


def _why(error) -> str:
    if error.validator == "required":
        return "is required"
    if error.validator == "additionalProperties":
        return "is not a known field"
    if error.validator == "maxLength":
        return f"must be at most {error.validator_value} characters"
    if error.validator == "minLength":
        return f"must be at least {error.validator_value} characters"
    if error.validator == "type":
        wanted = error.validator_value
        wanted = [t for t in wanted if t != "null"] if isinstance(wanted, list) else [wanted]
        return f"must be of type {' or '.join(wanted)}"
    if error.validator == "enum":
        return "must be one of " + ", ".join(str(v) for v in error.validator_value if v is not None)
    return error.message


def _nul_fields(value: Any, path: str = "") -> list[str]:
    """Where ``value`` holds text with a NUL character, which PostgreSQL cannot store."""
    if isinstance(value, str):
        return [path or "body"] if "\x00" in value else []
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            found += [name] if "\x00" in str(key) else _nul_fields(item, name)
        return found
    if isinstance(value, list):
        return [field for index, item in enumerate(value) for field in _nul_fields(item, f"{path}.{index}")]
    return []


def json_body(model: Model | None = None, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object, checked against ``model`` when given."""
    if not request.get_data(cache=True):
        if optional:
            return {}
        raise BadRequest("A JSON object body is required.", details={"body": "is required"})
    if not request.is_json:
        raise LLMGateError("The body must be JSON (Content-Type: application/json).", status=415,
                           code="unsupported_media_type")
    body = request.get_json(silent=True)
    if body is None:
        raise BadRequest("The body is not valid JSON.", details={"body": "is not valid JSON"})
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.", details={"body": "must be an object"})
    nul = _nul_fields(body)
    if nul:
        raise ValidationError("Text may not contain NUL characters (\\u0000).",
                              details={field: "must not contain NUL characters" for field in nul})
    if model is not None:
        errors = {}
        for error in sorted(_validator(model).iter_errors(body), key=lambda e: list(e.path)):
            errors.setdefault(_field_of(error), _why(error))
        if errors:
            raise ValidationError("Invalid request body: " + "; ".join(f"{k} {v}" for k, v in errors.items()),
                                  details=errors)
    return body


def query_flag(name: str) -> bool:
    value = request.args.get(name)
    if value is None:
        return False
    if value.lower() in {"1", "true", "yes"}:
        return True
    if value.lower() in {"0", "false", "no", ""}:
        return False
    raise ValidationError(f"Invalid query parameter {name}.", details={name: "must be true or false"})


def query_int(name: str) -> int | None:
    value = request.args.get(name)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 12:
        raise ValidationError(f"Invalid query parameter {name}.", details={name: "must be a positive integer"})
    return int(value)
