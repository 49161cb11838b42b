"""Stream translators, one event at a time: output is produced as soon as each input event arrives."""
import json

import anthropic.types
import openai.types.chat
import pydantic

from llmgate.gateway.translate.streams import AnthropicToOpenAI, OpenAIToAnthropic, is_usage_only_chunk
from llmgate.providers.base import Usage
from llmgate.providers.sse import encode_event, event_json, event_name


def anthropic_event(payload):
    return encode_event(payload, event=payload["type"])


ANTHROPIC_EVENTS = [anthropic_event(e) for e in [
    {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                                          "content": [], "stop_reason": None, "stop_sequence": None,
                                          "usage": {"input_tokens": 7, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t1", "name": "w",
                                                                  "input": {}}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"c":'}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '"R"}'}},
    {"type": "content_block_stop", "index": 1},
    {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "t2", "name": "x",
                                                                  "input": {}}},
    {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
    {"type": "content_block_stop", "index": 2},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
     "usage": {"output_tokens": 12}},
    {"type": "message_stop"},
]]


def test_anthropic_to_openai_event_by_event():
    translator = AnthropicToOpenAI(include_usage=True)
    produced = [translator.feed(e) for e in ANTHROPIC_EVENTS]
    assert produced[2] == [] and produced[3]  # ping → nothing; a delta comes out at once
    out = [e for batch in produced for e in batch]
    assert out[-1] == b"data: [DONE]\n\n"
    chunks = [event_json(e) for e in out[:-1]]
    for chunk in chunks:
        openai.types.chat.ChatCompletionChunk.model_validate(chunk)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""} and deltas[1] == {"content": "Checking"}
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert [c["index"] for c in calls] == [0, 0, 0, 1, 1]
    assert calls[0]["id"] == "t1" and "".join(c["function"].get("arguments", "") for c in calls[:3]) == '{"c":"R"}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 19
    assert translator.usage == Usage(7, 12)


def test_anthropic_to_openai_without_usage_and_with_error():
    translator = AnthropicToOpenAI(include_usage=False)
    out = [e for ev in ANTHROPIC_EVENTS for e in translator.feed(ev)]
    assert all(event_json(e) is None or "usage" not in event_json(e) for e in out)
    translator = AnthropicToOpenAI(include_usage=False)
    translator.feed(ANTHROPIC_EVENTS[0])
    error = anthropic_event({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert event_json(translator.feed(error)[0])["error"]["message"] == "Overloaded"


def openai_chunk(delta, finish=None, **extra):
    return encode_event({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt",
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})


OPENAI_EVENTS = [
    openai_chunk({"role": "assistant", "content": ""}),
    openai_chunk({"content": "Hel"}), openai_chunk({"content": "lo"}),
    openai_chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                  "function": {"name": "w", "arguments": ""}}]}),
    openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"c":1}'}}]}),
    openai_chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                                  "function": {"name": "x", "arguments": "{}"}}]}),
    openai_chunk({}, "tool_calls"),
    encode_event({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt", "choices": [],
                  "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}),
    b"data: [DONE]\n\n",
]


def test_openai_to_anthropic_event_by_event():
    translator = OpenAIToAnthropic()
    produced = [translator.feed(e) for e in OPENAI_EVENTS]
    assert translator.finish() == []  # [DONE] already closed the message
    out = [e for batch in produced for e in batch]
    names = [event_name(e) for e in out]
    assert names == ["message_start", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_stop", "content_block_start", "content_block_delta", "content_block_stop",
                     "content_block_start", "content_block_delta", "content_block_stop", "message_delta",
                     "message_stop"]
    events = [json.loads(e.split(b"data: ", 1)[1]) for e in out]
    for payload in events:  # each one as the Anthropic SDK would parse it
        pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent).validate_python(payload)
    assert events[5]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "w", "input": {}}
    assert events[6]["delta"] == {"type": "input_json_delta", "partial_json": '{"c":1}'}
    assert [events[i]["index"] for i in (1, 5, 8)] == [0, 1, 2]
    delta = anthropic.types.RawMessageDeltaEvent.model_validate(events[11])
    assert delta.delta.stop_reason == "tool_use" and delta.usage.output_tokens == 4 and delta.usage.input_tokens == 9
    assert translator.usage == Usage(9, 4)


def test_openai_stream_without_done_is_closed_by_finish():
    translator = OpenAIToAnthropic()
    for event in OPENAI_EVENTS[:3]:
        translator.feed(event)
    assert [event_name(e) for e in translator.finish()] == ["content_block_stop", "message_delta", "message_stop"]


def test_usage_only_chunk_detection():
    assert is_usage_only_chunk(OPENAI_EVENTS[-2])
    assert not is_usage_only_chunk(OPENAI_EVENTS[1]) and not is_usage_only_chunk(b"data: [DONE]\n\n")
