"""Whole responses and stop reasons, both ways, validated by the official SDKs' own response models."""
import anthropic.types
import openai.types.chat
import pytest

from llmgate.gateway.translate import responses, stop_reasons

MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
           "content": [{"type": "text", "text": "Let me check."},
                       {"type": "tool_use", "id": "t1", "name": "w", "input": {"city": "Rome"}}],
           "stop_reason": "tool_use", "stop_sequence": None,
           "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 90,
                     "cache_creation_input_tokens": 0}}


def test_anthropic_message_to_openai_completion():
    out = responses.anthropic_to_openai(MESSAGE)
    openai.types.chat.ChatCompletion.model_validate(out)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] == "Let me check."
    assert choice["message"]["tool_calls"] == [
        {"id": "t1", "type": "function", "function": {"name": "w", "arguments": '{"city": "Rome"}'}}]
    assert out["usage"] == {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105,
                            "prompt_tokens_details": {"cached_tokens": 90}}


def test_openai_completion_to_anthropic_message():
    completion = {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt", "choices": [
        {"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": '{"city":"Rome"}'}}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105,
                  "prompt_tokens_details": {"cached_tokens": 90}}}
    out = responses.openai_to_anthropic(completion)
    anthropic.types.Message.model_validate(out)
    assert out["content"] == [{"type": "tool_use", "id": "call_1", "name": "w", "input": {"city": "Rome"}}]
    assert out["stop_reason"] == "tool_use"
    assert out["usage"] == {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 90,
                            "cache_creation_input_tokens": 0}


def test_round_trip_keeps_text_and_usage():
    text_only = {**MESSAGE, "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn"}
    back = responses.openai_to_anthropic(responses.anthropic_to_openai(text_only))
    assert back["content"] == text_only["content"] and back["usage"] == text_only["usage"]
    assert back["stop_reason"] == "end_turn"


@pytest.mark.parametrize(("anthropic_reason", "openai_reason"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), (None, None)])
def test_stop_reasons_to_openai(anthropic_reason, openai_reason):
    assert stop_reasons.to_openai(anthropic_reason) == openai_reason


@pytest.mark.parametrize(("openai_reason", "anthropic_reason"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")])
def test_stop_reasons_to_anthropic(openai_reason, anthropic_reason):
    assert stop_reasons.to_anthropic(openai_reason) == anthropic_reason
