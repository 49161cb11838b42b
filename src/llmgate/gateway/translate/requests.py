"""Request bodies: OpenAI Chat Completions ⇄ Anthropic Messages.

Parameters with no counterpart are dropped (presence/frequency penalties, logit_bias, seed…
to Anthropic; top_k and thinking to OpenAI). ``response_format`` has no Anthropic field, so it
becomes an instruction appended to the system prompt (``JSON_OBJECT_INSTRUCTION`` /
``JSON_SCHEMA_INSTRUCTION``): the model is asked, not forced, to answer in JSON.
"""
from __future__ import annotations

import json
from typing import Any

from llmgate.gateway.translate.content import blocks_to_openai, parts_to_anthropic, text_of
from llmgate.gateway.translate.tools import (
    tool_choice_to_anthropic, tool_choice_to_openai, tools_to_anthropic, tools_to_openai,
)
from llmgate.providers.errors import BadRequestError

# Anthropic requires max_tokens; OpenAI clients often send none.
DEFAULT_ANTHROPIC_MAX_TOKENS = 4096
JSON_OBJECT_INSTRUCTION = "Respond only with a single valid JSON object, without any other text or code fences."
JSON_SCHEMA_INSTRUCTION = ("Respond only with a single valid JSON value that conforms to this JSON schema, "
                           "without any other text or code fences:\n{schema}")


def openai_to_anthropic(body: dict[str, Any], *, model: str,
                        default_max_tokens: int = DEFAULT_ANTHROPIC_MAX_TOKENS) -> dict[str, Any]:
    if (body.get("n") or 1) > 1:
        raise BadRequestError("n > 1 is not supported by Anthropic models; send n=1 (or several requests)")
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in body.get("messages") or []:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(text_of(message.get("content")))
        elif role == "user":
            _append(messages, "user", parts_to_anthropic(message.get("content")))
        elif role == "assistant":
            _append(messages, "assistant", _assistant_blocks(message))
        elif role == "tool":
            _append(messages, "user", [{"type": "tool_result", "tool_use_id": message.get("tool_call_id"),
                                        "content": text_of(message.get("content"))}])
        else:
            raise BadRequestError(f"message role {role!r} cannot be sent to an Anthropic model")
    instruction = _response_format_instruction(body.get("response_format"))
    if instruction:
        system.append(instruction)

    out: dict[str, Any] = {"model": model, "messages": messages,
                           "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens")
                           or default_max_tokens}
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("temperature") is not None:
        # OpenAI allows 0..2, Anthropic 0..1.
        out["temperature"] = min(float(body["temperature"]), 1.0)
    for key in ("top_p", "top_k", "stream"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("tools"):
        out["tools"] = tools_to_anthropic(body["tools"])
        choice = tool_choice_to_anthropic(body.get("tool_choice"), parallel_tool_calls=body.get("parallel_tool_calls"))
        if choice:
            out["tool_choice"] = choice
    if body.get("user"):
        out["metadata"] = {"user_id": body["user"]}
    return out


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = text_of(message.get("content"))
    if text:  # Anthropic rejects empty text blocks
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        arguments = call["function"].get("arguments") or "{}"
        try:
            tool_input = json.loads(arguments)
        except ValueError:
            raise BadRequestError(f"tool call {call.get('id')!r} has arguments that are not JSON") from None
        blocks.append({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": tool_input})
    return blocks


def _append(messages: list[dict[str, Any]], role: str, content: str | list[dict[str, Any]]) -> None:
    """Add a message, merging into the previous one of the same role (consecutive tool results
    become one user message, as Anthropic expects results of parallel calls)."""
    if messages and messages[-1]["role"] == role:
        previous = messages[-1]["content"]
        previous = [{"type": "text", "text": previous}] if isinstance(previous, str) else previous
        addition = [{"type": "text", "text": content}] if isinstance(content, str) else content
        messages[-1]["content"] = previous + addition
    else:
        messages.append({"role": role, "content": content})


def _response_format_instruction(response_format: dict[str, Any] | None) -> str | None:
    kind = (response_format or {}).get("type")
    if kind == "json_object":
        return JSON_OBJECT_INSTRUCTION
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return JSON_SCHEMA_INSTRUCTION.format(schema=json.dumps(schema))
    return None


def anthropic_to_openai(body: dict[str, Any], *, model: str,
                        max_tokens_param: str = "max_completion_tokens") -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": text_of(system)})
    for message in body.get("messages") or []:
        content = message.get("content")
        if message.get("role") == "assistant":
            messages.append(_assistant_message(content))
        elif isinstance(content, str):
            messages.append({"role": "user", "content": content})
        else:
            # tool results must directly follow the assistant's tool calls, so they go first.
            rest = []
            for block in content or []:
                if block.get("type") == "tool_result":
                    messages.append({"role": "tool", "tool_call_id": block["tool_use_id"],
                                     "content": _tool_result_text(block)})
                else:
                    rest.append(block)
            if rest:
                messages.append({"role": "user", "content": blocks_to_openai(rest)})

    out: dict[str, Any] = {"model": model, "messages": messages}
    if body.get("max_tokens") is not None:
        out[max_tokens_param] = body["max_tokens"]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("stream"):
        # Anthropic clients always get usage in message_delta, so ask OpenAI for it.
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    if body.get("tools"):
        out["tools"] = tools_to_openai(body["tools"])
        choice, parallel = tool_choice_to_openai(body.get("tool_choice"))
        if choice is not None:
            out["tool_choice"] = choice
        if parallel is not None:
            out["parallel_tool_calls"] = parallel
    user_id = (body.get("metadata") or {}).get("user_id")
    if user_id:
        out["user"] = user_id
    return out


def _assistant_message(content: Any) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
    calls = [{"id": b["id"], "type": "function",
              "function": {"name": b["name"], "arguments": json.dumps(b.get("input") or {})}}
             for b in content if b.get("type") == "tool_use"]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list) and any(b.get("type") != "text" for b in content):
        raise BadRequestError("tool results with images cannot be sent to an OpenAI-format model")
    text = text_of(content)
    return f"Error: {text}" if block.get("is_error") else text
