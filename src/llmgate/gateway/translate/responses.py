"""Whole (non-streamed) responses: Anthropic message ⇄ OpenAI chat.completion."""
from __future__ import annotations

import json
import time
from typing import Any

from llmgate.gateway.translate import stop_reasons
from llmgate.providers.base import Usage


def anthropic_to_openai(message: dict[str, Any]) -> dict[str, Any]:
    blocks = message.get("content") or []
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    calls = [{"id": b["id"], "type": "function",
              "function": {"name": b["name"], "arguments": json.dumps(b.get("input") or {})}}
             for b in blocks if b.get("type") == "tool_use"]
    reply: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else ""), "refusal": None}
    if calls:
        reply["tool_calls"] = calls
    return {
        "id": message.get("id", ""), "object": "chat.completion", "created": int(time.time()),
        "model": message.get("model"),
        "choices": [{"index": 0, "message": reply, "logprobs": None,
                     "finish_reason": stop_reasons.to_openai(message.get("stop_reason"))}],
        "usage": Usage.from_anthropic(message.get("usage")).to_openai(),
    }


def openai_to_anthropic(completion: dict[str, Any]) -> dict[str, Any]:
    choice = (completion.get("choices") or [{}])[0]
    reply = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if reply.get("content"):
        content.append({"type": "text", "text": reply["content"]})
    for call in reply.get("tool_calls") or []:
        content.append({"type": "tool_use", "id": call["id"], "name": call["function"]["name"],
                        "input": _arguments(call["function"].get("arguments"))})
    return {
        "id": completion.get("id", ""), "type": "message", "role": "assistant", "model": completion.get("model"),
        "content": content, "stop_reason": stop_reasons.to_anthropic(choice.get("finish_reason")),
        "stop_sequence": None, "usage": Usage.from_openai(completion.get("usage")).to_anthropic(),
    }


def _arguments(arguments: str | None) -> Any:
    # A model can emit malformed JSON arguments; keep the text rather than fail the whole answer.
    try:
        return json.loads(arguments or "{}")
    except ValueError:
        return {"_raw_arguments": arguments}
