"""Request bodies, OpenAI ⇄ Anthropic."""
import json

import pytest

from llmgate.gateway.translate import requests
from llmgate.providers.errors import BadRequestError

PNG = "iVBORw0KGgo="
TOOL = {"type": "function", "function": {"name": "lookup", "description": "Find it",
                                         "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}


def to_anthropic(**body):
    return requests.openai_to_anthropic({"messages": [{"role": "user", "content": "hi"}], **body}, model="claude")


def test_system_and_developer_become_system_and_defaults():
    out = requests.openai_to_anthropic({"model": "x", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
        {"role": "user", "content": "hi"}]}, model="claude")
    assert out == {"model": "claude", "system": "Be brief.\n\nNo emoji.",
                   "messages": [{"role": "user", "content": "hi"}], "max_tokens": requests.DEFAULT_ANTHROPIC_MAX_TOKENS}


def test_sampling_parameters():
    out = to_anthropic(max_completion_tokens=10, max_tokens=99, stop="END", temperature=1.7, top_p=0.9, top_k=5,
                       presence_penalty=1, seed=3, user="u-1", stream=True, stream_options={"include_usage": True})
    assert out["max_tokens"] == 10 and out["stop_sequences"] == ["END"] and out["temperature"] == 1.0
    assert (out["top_p"], out["top_k"], out["stream"]) == (0.9, 5, True)
    assert out["metadata"] == {"user_id": "u-1"}
    assert not {"presence_penalty", "seed", "stream_options", "user"} & out.keys()


def test_n_above_one_is_a_bad_request():
    with pytest.raises(BadRequestError, match="n > 1"):
        to_anthropic(n=2)


@pytest.mark.parametrize(("choice", "parallel", "expected"), [
    (None, None, None), ("auto", None, {"type": "auto"}), ("none", None, {"type": "none"}),
    ("required", None, {"type": "any"}), ({"type": "function", "function": {"name": "lookup"}}, None,
                                          {"type": "tool", "name": "lookup"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
])
def test_tools_and_tool_choice_to_anthropic(choice, parallel, expected):
    out = to_anthropic(tools=[TOOL], tool_choice=choice, parallel_tool_calls=parallel)
    assert out["tools"] == [{"name": "lookup", "description": "Find it", "input_schema": TOOL["function"]["parameters"]}]
    assert out.get("tool_choice") == expected


def test_tool_calls_and_results_to_anthropic():
    out = requests.openai_to_anthropic({"messages": [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"city":"Paris"}'}},
            {"id": "c2", "type": "function", "function": {"name": "w", "arguments": '{"city":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "rain"}]},
        {"role": "user", "content": "thanks"}]}, model="claude")
    assert out["messages"] == [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "w", "input": {"city": "Paris"}},
                                          {"type": "tool_use", "id": "c2", "name": "w", "input": {"city": "Rome"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "sunny"},
                                     {"type": "tool_result", "tool_use_id": "c2", "content": "rain"},
                                     {"type": "text", "text": "thanks"}]}]


def test_bad_tool_arguments_are_a_bad_request():
    with pytest.raises(BadRequestError, match="not JSON"):
        requests.openai_to_anthropic({"messages": [{"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{nope"}}]}]}, model="c")


def test_images_to_anthropic():
    out = to_anthropic(messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}]}])
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]
    with pytest.raises(BadRequestError):
        to_anthropic(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}])


def test_response_format_becomes_a_system_instruction():
    assert to_anthropic(response_format={"type": "json_object"})["system"] == requests.JSON_OBJECT_INSTRUCTION
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    out = to_anthropic(messages=[{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}],
                       response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert out["system"].startswith("S\n\n") and json.dumps(schema) in out["system"]
    assert "system" not in to_anthropic(response_format={"type": "text"})


def test_anthropic_to_openai_full():
    out = requests.anthropic_to_openai({
        "model": "c", "max_tokens": 64, "system": [{"type": "text", "text": "Be brief."}],
        "stop_sequences": ["END"], "temperature": 0.2, "top_p": 0.8, "top_k": 3, "stream": True,
        "metadata": {"user_id": "u-9"},
        "tools": [{"name": "w", "description": "Weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                      "data": PNG}}]},
            {"role": "assistant", "content": [{"type": "text", "text": "checking"},
                                              {"type": "tool_use", "id": "t1", "name": "w", "input": {"c": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                                         {"type": "tool_result", "tool_use_id": "t2", "is_error": True,
                                          "content": [{"type": "text", "text": "boom"}]},
                                         {"type": "text", "text": "and?"}]}]}, model="gpt")
    assert out == {
        "model": "gpt", "max_completion_tokens": 64, "stop": ["END"], "temperature": 0.2, "top_p": 0.8,
        "stream": True, "stream_options": {"include_usage": True}, "user": "u-9",
        "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"},
                                                    "description": "Weather"}}],
        "tool_choice": "required", "parallel_tool_calls": False,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
            {"role": "assistant", "content": "checking", "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "w", "arguments": '{"c": 1}'}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "ok"},
            {"role": "tool", "tool_call_id": "t2", "content": "Error: boom"},
            {"role": "user", "content": [{"type": "text", "text": "and?"}]}]}


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, "auto"), ({"type": "none"}, "none"),
    ({"type": "tool", "name": "w"}, {"type": "function", "function": {"name": "w"}})])
def test_tool_choice_to_openai(choice, expected):
    out = requests.anthropic_to_openai({"messages": [], "tools": [{"name": "w", "input_schema": {}}],
                                        "tool_choice": choice}, model="gpt", max_tokens_param="max_tokens")
    assert out["tool_choice"] == expected and "parallel_tool_calls" not in out


def test_url_images_and_server_tools_to_openai():
    out = requests.anthropic_to_openai({"max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://e.com/a.png"}}]}]},
        model="gpt", max_tokens_param="max_tokens")
    assert out["max_tokens"] == 5
    assert out["messages"][0]["content"] == [{"type": "image_url", "image_url": {"url": "https://e.com/a.png"}}]
    with pytest.raises(BadRequestError):
        requests.anthropic_to_openai({"messages": [], "tools": [{"type": "web_search_20250305", "name": "s"}]},
                                     model="gpt")
