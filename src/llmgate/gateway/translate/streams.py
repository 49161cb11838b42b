"""Event-by-event stream translators: each ``feed`` takes one upstream SSE event and returns the
client events it produces right away, so nothing is buffered beyond the current event."""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from llmgate.gateway.translate import stop_reasons
from llmgate.providers.base import Usage
from llmgate.providers.sse import DONE, encode_event, event_data, event_json, event_name


class StreamTranslator(Protocol):
    def feed(self, event: bytes) -> list[bytes]: ...

    def finish(self) -> list[bytes]:
        """Events still owed when the upstream ended (closing a stream the upstream left open)."""


def translate_stream(events: Iterable[bytes], translator: StreamTranslator) -> Iterator[bytes]:
    for event in events:
        yield from translator.feed(event)
    yield from translator.finish()


class AnthropicToOpenAI:
    """Anthropic Messages events → OpenAI ``chat.completion.chunk`` events ending in ``[DONE]``."""

    def __init__(self, *, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.usage = Usage()
        self._start_usage: dict[str, Any] = {}
        self._base: dict[str, Any] = {"id": "", "object": "chat.completion.chunk", "created": int(time.time()),
                                      "model": None}
        if include_usage:
            self._base["usage"] = None
        self._tool_index: dict[int, int] = {}  # Anthropic block index → OpenAI tool_calls index
        self._done = False

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return encode_event({**self._base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                        "finish_reason": finish_reason}]})

    def feed(self, event: bytes) -> list[bytes]:
        name = event_name(event)
        if name in (None, "ping") or self._done:
            return []
        payload = event_json(event) or {}
        if name == "message_start":
            message = payload.get("message") or {}
            self._base["id"], self._base["model"] = message.get("id", ""), message.get("model")
            self._start_usage = dict(message.get("usage") or {})
            self.usage = Usage.from_anthropic(self._start_usage)
            return [self._chunk({"role": "assistant", "content": ""})]
        if name == "content_block_start":
            block = payload.get("content_block") or {}
            if block.get("type") != "tool_use":
                return []
            index = self._tool_index.setdefault(payload["index"], len(self._tool_index))
            return [self._chunk({"tool_calls": [{"index": index, "id": block["id"], "type": "function",
                                                 "function": {"name": block["name"], "arguments": ""}}]})]
        if name == "content_block_delta":
            delta = payload.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta["text"]})]
            if delta.get("type") == "input_json_delta" and payload.get("index") in self._tool_index:
                index = self._tool_index[payload["index"]]
                return [self._chunk({"tool_calls": [{"index": index,
                                                     "function": {"arguments": delta["partial_json"]}}]})]
            return []  # thinking and signature deltas have no OpenAI counterpart
        if name == "message_delta":
            usage = {k: v for k, v in (payload.get("usage") or {}).items() if v is not None}
            self.usage = Usage.from_anthropic({**self._start_usage, **usage})
            reason = stop_reasons.to_openai((payload.get("delta") or {}).get("stop_reason"))
            return [self._chunk({}, reason)] if reason else []
        if name == "message_stop":
            self._done = True
            tail = [encode_event({**self._base, "choices": [], "usage": self.usage.to_openai()})] \
                if self.include_usage else []
            return tail + [DONE]
        if name == "error":
            self._done = True
            error = payload.get("error") or {}
            return [encode_event({"error": {"message": error.get("message", "upstream error"),
                                            "type": error.get("type", "api_error"), "param": None, "code": None}})]
        return []

    def finish(self) -> list[bytes]:
        return []  # an upstream that ended without message_stop was cut: the exchange reports it


class OpenAIToAnthropic:
    """OpenAI chunks → Anthropic Messages events (``message_start`` … ``message_stop``).

    OpenAI sends usage only at the end, so ``message_start`` carries zero tokens and the real
    counts (input included) go in ``message_delta``, which both Anthropic SDKs read.
    """

    def __init__(self) -> None:
        self.usage = Usage()
        self._started = False
        self._open: tuple[str, int] | None = None  # ("text" | "tool", OpenAI tool index) of the open block
        self._block = -1
        self._stop_reason: str | None = None
        self._done = False

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        self._started = True
        message = {"id": chunk.get("id", ""), "type": "message", "role": "assistant", "model": chunk.get("model"),
                   "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": 0, "output_tokens": 0}}
        return [encode_event({"type": "message_start", "message": message}, event="message_start")]

    def _close_block(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [encode_event({"type": "content_block_stop", "index": self._block}, event="content_block_stop")]

    def _open_block(self, key: tuple[str, int], block: dict[str, Any]) -> list[bytes]:
        out = self._close_block()
        self._block += 1
        self._open = key
        out.append(encode_event({"type": "content_block_start", "index": self._block, "content_block": block},
                                event="content_block_start"))
        return out

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return encode_event({"type": "content_block_delta", "index": self._block, "delta": delta},
                            event="content_block_delta")

    def feed(self, event: bytes) -> list[bytes]:
        if self._done:
            return []
        if event_data(event) == b"[DONE]":
            return self.finish()
        chunk = event_json(event)
        if not isinstance(chunk, dict):
            return []
        if "error" in chunk:
            self._done = True
            error = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
            return [encode_event({"type": "error", "error": {"type": "api_error",
                                                             "message": error.get("message", "upstream error")}},
                                 event="error")]
        out = [] if self._started else self._start(chunk)
        if chunk.get("usage"):
            self.usage = Usage.from_openai(chunk["usage"])
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if self._open is None or self._open[0] != "text":
                    out += self._open_block(("text", 0), {"type": "text", "text": ""})
                out.append(self._delta({"type": "text_delta", "text": delta["content"]}))
            for call in delta.get("tool_calls") or []:
                key = ("tool", call.get("index", 0))
                function = call.get("function") or {}
                if call.get("id") and self._open != key:
                    out += self._open_block(key, {"type": "tool_use", "id": call["id"],
                                                  "name": function.get("name", ""), "input": {}})
                if function.get("arguments") and self._open == key:
                    out.append(self._delta({"type": "input_json_delta", "partial_json": function["arguments"]}))
            if choice.get("finish_reason"):
                self._stop_reason = stop_reasons.to_anthropic(choice["finish_reason"])
                out += self._close_block()
        return out

    def finish(self) -> list[bytes]:
        if self._done or not self._started:
            return []
        self._done = True
        out = self._close_block()
        out.append(encode_event({"type": "message_delta",
                                 "delta": {"stop_reason": self._stop_reason or "end_turn", "stop_sequence": None},
                                 "usage": self.usage.to_anthropic() | {"output_tokens": self.usage.output_tokens}},
                                event="message_delta"))
        out.append(encode_event({"type": "message_stop"}, event="message_stop"))
        return out


def is_usage_only_chunk(event: bytes) -> bool:
    """The trailing OpenAI chunk that carries usage and no choices (cheap byte test first)."""
    if b'"choices":[]' not in event and b'"choices": []' not in event:
        return False
    chunk = event_json(event)
    return isinstance(chunk, dict) and not chunk.get("choices") and bool(chunk.get("usage"))

