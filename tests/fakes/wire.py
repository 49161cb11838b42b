"""What the fake upstreams say: deterministic replies rendered in the exact OpenAI and Anthropic wire formats."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One answer, before it is put in either format."""

    text: str | None = None
    tool_name: str | None = None
    tool_args: dict[str, Any] | None = None
    stop: str = "end"  # end | length | stop_sequence
    input_tokens: int = 0

    @property
    def output_tokens(self) -> int:
        if self.tool_name:
            return len(json.dumps(self.tool_args).split())
        return len((self.text or "").split())


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    out = []
    for part in content or []:
        if part.get("type") == "text":
            out.append(part["text"])
        elif part.get("type") == "tool_result":
            out.extend(_texts(part.get("content")))
    return out


def last_user_text(body: dict[str, Any]) -> str:
    """The last user (or tool result) text: what the fake echoes."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") in ("user", "tool"):
            texts = _texts(message.get("content"))
            if message.get("role") == "tool" or any(p.get("type") == "tool_result" for p in
                                                    (message["content"] if isinstance(message["content"], list) else [])):
                return "tool result: " + " ".join(texts)
            return " ".join(texts)
    return ""


def prompt_words(body: dict[str, Any]) -> int:
    words = sum(len(t.split()) for m in body.get("messages") or [] for t in _texts(m.get("content")))
    system = body.get("system")
    words += sum(len(t.split()) for t in _texts(system)) if system else 0
    return max(words, 1)


def forced_tool(body: dict[str, Any], wire: str) -> str | None:
    """The tool the request forces or invites ("call_tool" in the text), else None."""
    tools = body.get("tools") or []
    if not tools:
        return None
    choice = body.get("tool_choice")
    kind = choice.get("type") if isinstance(choice, dict) else choice
    if kind == "none":
        return None
    first = tools[0]["function"]["name"] if wire == "openai" else tools[0]["name"]
    if isinstance(choice, dict) and kind == "function":
        return choice["function"]["name"]
    if isinstance(choice, dict) and kind == "tool":
        return choice["name"]
    if kind in ("required", "any") or "call_tool" in last_user_text(body):
        return first
    return None


def decide(body: dict[str, Any], wire: str, *, text: str | None = None,
           tool: tuple[str, dict[str, Any]] | None = None) -> Reply:
    """The default reply (echo or tool call), unless the test scripted ``text`` or ``tool``."""
    tokens = prompt_words(body)
    if tool:
        return Reply(tool_name=tool[0], tool_args=tool[1], input_tokens=tokens)
    if text is None:
        name = forced_tool(body, wire)
        if name:
            return Reply(tool_name=name, tool_args={"query": last_user_text(body)}, input_tokens=tokens)
        text = "echo: " + last_user_text(body)
    stops = body.get("stop_sequences") if wire == "anthropic" else body.get("stop")
    for stop in [stops] if isinstance(stops, str) else stops or []:
        if stop and stop in text:
            return Reply(text=text[:text.index(stop)], stop="stop_sequence", input_tokens=tokens)
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    if limit and len(text.split()) > limit:
        return Reply(text=" ".join(text.split()[:limit]), stop="length", input_tokens=tokens)
    return Reply(text=text, input_tokens=tokens)


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)] if text else []


# --- OpenAI ---------------------------------------------------------------------------------------

_OPENAI_FINISH = {"end": "stop", "stop_sequence": "stop", "length": "length"}


def openai_usage(reply: Reply) -> dict[str, Any]:
    return {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}


def openai_completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    finish = _OPENAI_FINISH[reply.stop]
    if reply.tool_name:
        message["tool_calls"] = [{"id": "call_fake_1", "type": "function", "function": {
            "name": reply.tool_name, "arguments": json.dumps(reply.tool_args)}}]
        finish = "tool_calls"
    choices = [{"index": i, "message": message, "logprobs": None, "finish_reason": finish}
               for i in range(body.get("n") or 1)]
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1700000000, "model": body.get("model"),
            "choices": choices, "usage": openai_usage(reply), "system_fingerprint": None}


def openai_chunks(body: dict[str, Any], reply: Reply) -> list[dict[str, Any]]:
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000,
            "model": body.get("model"), "system_fingerprint": None}
    if include_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": "" if not reply.tool_name else None, "refusal": None})]
    if reply.tool_name:
        args = json.dumps(reply.tool_args)
        chunks.append(chunk({"tool_calls": [{"index": 0, "id": "call_fake_1", "type": "function",
                                             "function": {"name": reply.tool_name, "arguments": ""}}]}))
        for at in range(0, len(args), 8):
            chunks.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[at:at + 8]}}]}))
        chunks.append(chunk({}, "tool_calls"))
    else:
        chunks += [chunk({"content": piece}) for piece in _pieces(reply.text or "")]
        chunks.append(chunk({}, _OPENAI_FINISH[reply.stop]))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": openai_usage(reply)})
    return chunks


def openai_error(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
            404: "invalid_request_error", 429: "rate_limit_exceeded"}.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def embedding(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("input")
    inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
    data = [{"object": "embedding", "index": i,
             "embedding": [b / 255 for b in hashlib.sha256(str(text).encode()).digest()[:8]]}
            for i, text in enumerate(inputs)]
    tokens = sum(len(str(t).split()) for t in inputs)
    return {"object": "list", "data": data, "model": body.get("model"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


# --- Anthropic ------------------------------------------------------------------------------------

_ANTHROPIC_STOP = {"end": "end_turn", "stop_sequence": "stop_sequence", "length": "max_tokens"}


def _anthropic_stop(body: dict[str, Any], reply: Reply) -> tuple[str, str | None]:
    if reply.tool_name:
        return "tool_use", None
    stop_sequence = None
    if reply.stop == "stop_sequence":
        stop_sequence = next(s for s in body["stop_sequences"] if s)
    return _ANTHROPIC_STOP[reply.stop], stop_sequence


def anthropic_message(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    if reply.tool_name:
        content = [{"type": "tool_use", "id": "toolu_fake_1", "name": reply.tool_name, "input": reply.tool_args}]
    else:
        content = [{"type": "text", "text": reply.text}]
    stop_reason, stop_sequence = _anthropic_stop(body, reply)
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": body.get("model"),
            "content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence,
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}


def anthropic_events(body: dict[str, Any], reply: Reply) -> list[tuple[str, dict[str, Any]]]:
    start = {**anthropic_message(body, reply), "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**start["usage"], "output_tokens": 1}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
    if reply.tool_name:
        block = {"type": "tool_use", "id": "toolu_fake_1", "name": reply.tool_name, "input": {}}
        args = json.dumps(reply.tool_args)
        deltas = [{"type": "input_json_delta", "partial_json": args[at:at + 8]} for at in range(0, len(args), 8)]
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(reply.text or "")]
    events.append(("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}))
    events.append(("ping", {"type": "ping"}))
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d}) for d in deltas]
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    stop_reason, stop_sequence = _anthropic_stop(body, reply)
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                                     "usage": {"output_tokens": reply.output_tokens}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
            404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
            529: "overloaded_error"}.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}
