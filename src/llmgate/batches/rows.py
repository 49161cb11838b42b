"""One batch row, executed: an OpenAI request line, or a table row through the prompt template.

Both go through the gateway service (routing, retries, fallbacks, accounting), so any model of
models.yaml works, Anthropic ones included. Errors that belong to the row become the row's
result; ``QuotaExceeded`` and our own rate limits are raised for the runner to act on.
"""
from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import jsonschema

from ..auth.principal import Principal
from ..errors import LLMGateError, QuotaExceeded, RateLimited
from ..gateway import service as gateway
from ..gateway.catalog import get_catalog
from ..providers.base import Usage
from ..providers.errors import ProviderError
from . import templates

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
ENDPOINTS = (CHAT, EMBEDDINGS)
REASK = ("Your previous answer does not match the required JSON schema: {error}\n"
         "Answer again with only a JSON value that matches the schema.")


class RetryLater(Exception):
    """Our own rate limit said wait: the row stays pending and is tried again after ``seconds``."""

    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds


def request_id() -> str:
    return "batch_req_" + secrets.token_hex(12)


def cost_of(model: str, usage: Usage) -> float:
    from ..accounting.pricing import call_cost

    value = call_cost(get_catalog().price(model), usage)
    return float(value) if value is not None else 0.0


def _error_body(error: Exception) -> tuple[int, dict[str, Any]]:
    if isinstance(error, LLMGateError):
        return error.status, {"error": {"message": error.message, "type": "invalid_request_error"
                                        if error.status < 500 else "server_error", "param": error.param,
                                        "code": error.code}}
    if isinstance(error, ProviderError):
        return error.status, {"error": {"message": error.message, "type": error.kind, "param": None,
                                        "code": error.kind}}
    return 500, {"error": {"message": "internal error", "type": "server_error", "param": None, "code": None}}


def _call(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The gateway call; our own limits become ``RetryLater``, a spent budget passes through."""
    try:
        return fn()
    except QuotaExceeded:
        raise
    except RateLimited as error:
        wait = float(error.headers.get("Retry-After") or error.headers.get("retry-after") or 1)
        raise RetryLater(max(0.05, wait)) from None


# --- OpenAI batch lines -----------------------------------------------------------------------

def run_request(*, principal: Principal, batch_id: str, endpoint: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(row status, result)``; the result holds the output line's ``response`` or ``error``."""
    rid = request_id()
    call = gateway.embed if endpoint == EMBEDDINGS else gateway.complete_chat
    try:
        answer = _call(lambda: call(principal=principal, body=body, request_id=rid, batch_id=batch_id))
    except (QuotaExceeded, RetryLater):
        raise
    except (LLMGateError, ProviderError) as error:
        status, payload = _error_body(error)
        return "failed", {"request_id": rid, "status_code": status, "body": payload}
    usage = Usage.from_openai(answer.get("usage"))
    return "done", {"request_id": rid, "status_code": 200, "body": answer,
                    "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                    "cost": cost_of(body["model"], usage)}


# --- tabular rows ---------------------------------------------------------------------------------

def tabular_body(options: dict[str, Any], cells: dict[str, Any], model: str) -> dict[str, Any]:
    messages = []
    if options.get("system"):
        messages.append({"role": "system", "content": templates.render(options["system"], cells)})
    messages.append({"role": "user", "content": templates.render(options["template"], cells)})
    body = {**(options.get("params") or {}), "model": model, "messages": messages}
    if options.get("schema") is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "row_answer", "schema": options["schema"], "strict": False}}
    return body


def _text(answer: dict[str, Any]) -> str:
    choices = answer.get("choices") or [{}]
    return (choices[0].get("message") or {}).get("content") or ""


def _schema_problem(text: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    cleaned = text.strip()
    if cleaned.startswith("```"):  # some models fence JSON even when asked not to
        cleaned = cleaned.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(cleaned)
    except json.JSONDecodeError as error:
        return None, f"the answer is not JSON ({error.msg})"
    found = jsonschema.validators.validator_for(schema)(schema).iter_errors(value)
    first = next(iter(sorted(found, key=lambda e: list(e.absolute_path))), None)
    if first is None:
        return value, None
    where = "/".join(str(p) for p in first.absolute_path) or "(root)"
    return value, f"at {where}: {first.message}"


def run_tabular(*, principal: Principal, batch_id: str, model: str, options: dict[str, Any],
                cells: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    result: dict[str, Any] = {"input_tokens": 0, "output_tokens": 0, "cost": 0.0, "error": None}
    try:
        body = tabular_body(options, cells, model)
    except templates.RenderError as error:
        return "failed", {**result, "error": str(error)}
    schema = options.get("schema")
    attempts = 2 if schema is not None else 1  # one re-ask when the answer breaks the schema
    for attempt in range(attempts):
        rid = request_id()
        try:
            answer = _call(lambda: gateway.complete_chat(principal=principal, body=body, request_id=rid,
                                                         batch_id=batch_id))
        except (QuotaExceeded, RetryLater):
            if attempt == 0:
                raise
            return "failed", {**result, "error": "the budget ran out before the re-ask"}
        except (LLMGateError, ProviderError) as error:
            status, payload = _error_body(error)
            return "failed", {**result, "error": f"{status}: {payload['error']['message']}"}
        usage = Usage.from_openai(answer.get("usage"))
        result["input_tokens"] += usage.input_tokens
        result["output_tokens"] += usage.output_tokens
        result["cost"] += cost_of(model, usage)
        text = _text(answer)
        if schema is None:
            return "done", {**result, "answer": text}
        value, problem = _schema_problem(text, schema)
        if problem is None:
            return "done", {**result, "fields": value if isinstance(value, dict) else {"answer": value}}
        if attempt + 1 < attempts:
            body = {**body, "messages": body["messages"] + [
                {"role": "assistant", "content": text}, {"role": "user", "content": REASK.format(error=problem)}]}
    return "failed", {**result, "answer": text, "error": f"schema: {problem}"}


def backoff(seconds: float, should_stop: Callable[[], bool], cap: float = 30.0) -> None:
    """Sleep ``seconds`` (capped) in small steps, waking early when the batch is stopped."""
    end = time.monotonic() + min(seconds, cap)
    while time.monotonic() < end and not should_stop():
        time.sleep(min(0.2, end - time.monotonic()) if end > time.monotonic() else 0)
