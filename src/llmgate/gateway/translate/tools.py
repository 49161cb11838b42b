"""Tool definitions and tool_choice (OpenAI function tools ⇄ Anthropic tools with ``input_schema``)."""
from __future__ import annotations

from typing import Any

from llmgate.providers.errors import BadRequestError

_EMPTY_SCHEMA = {"type": "object", "properties": {}}


def tools_to_anthropic(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        if tool.get("type", "function") != "function":
            raise BadRequestError(f"tool type {tool.get('type')!r} cannot be sent to an Anthropic model")
        function = tool["function"]
        converted = {"name": function["name"], "input_schema": function.get("parameters") or _EMPTY_SCHEMA}
        if function.get("description"):
            converted["description"] = function["description"]
        out.append(converted)
    return out


def tools_to_openai(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        if tool.get("type") not in (None, "custom") or "input_schema" not in tool:
            raise BadRequestError(f"server tool {tool.get('type') or tool.get('name')!r} "
                                  "cannot be sent to an OpenAI-format model")
        function = {"name": tool["name"], "parameters": tool["input_schema"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def tool_choice_to_anthropic(choice: Any, *, parallel_tool_calls: bool | None) -> dict[str, Any] | None:
    if isinstance(choice, dict):
        converted: dict[str, Any] = {"type": "tool", "name": choice["function"]["name"]}
    elif choice in (None, "auto"):
        converted = {"type": "auto"}
    elif choice == "required":
        converted = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    else:
        raise BadRequestError(f"unknown tool_choice {choice!r}")
    if parallel_tool_calls is False:
        converted["disable_parallel_tool_use"] = True
    elif choice is None:
        return None  # nothing asked: leave Anthropic's default
    return converted


def tool_choice_to_openai(choice: dict[str, Any] | None) -> tuple[Any, bool | None]:
    """(tool_choice, parallel_tool_calls) for an Anthropic tool_choice."""
    if not choice:
        return None, None
    parallel = False if choice.get("disable_parallel_tool_use") else None
    kind = choice.get("type")
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool":
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    raise BadRequestError(f"unknown tool_choice type {kind!r}")
