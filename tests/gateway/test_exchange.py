"""The exchange against the fake upstream: pass-through when formats match, translation otherwise."""
import copy
import json

import anthropic.types
import httpx2
import openai.types.chat
import pytest

from llmgate.gateway import exchange
from llmgate.gateway.translate.requests import JSON_OBJECT_INSTRUCTION
from llmgate.providers.base import RawResult, RawStream, Usage
from llmgate.providers.errors import BadRequestError, RateLimitedError
from llmgate.providers.sse import event_json, event_name, split_events

OPENAI_BODY = {"model": "gpt-alias", "messages": [{"role": "system", "content": "Be kind."},
                                                  {"role": "user", "content": "hello big world"}]}
ANTHROPIC_BODY = {"model": "claude-alias", "max_tokens": 100, "system": "Be kind.",
                  "messages": [{"role": "user", "content": "hello big world"}]}
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
PNG = "data:image/png;base64,iVBORw0KGgo="


def upstream_bytes(fake, path, body):
    fake.app.record = False
    try:
        return httpx2.post(fake.base_url + path, json=body).content
    finally:
        fake.app.record = True


def openai_chunks(events):
    chunks = [event_json(e) for e in events]
    assert chunks[-1] is None and events[-1] == b"data: [DONE]\n\n"
    return [openai.types.chat.ChatCompletionChunk.model_validate(c) for c in chunks[:-1]]


# --- pass-through --------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "client_format", "body", "path"), [
    ("openai", "openai", OPENAI_BODY, "/v1/chat/completions"),
    ("openai-compatible", "openai", OPENAI_BODY, "/v1/chat/completions"),
    ("anthropic", "anthropic", ANTHROPIC_BODY, "/v1/messages")])
@pytest.mark.parametrize("stream", [False, True])
def test_passthrough_changes_only_the_model(fake, providers, kind, client_format, body, path, stream):
    provider = providers[kind]
    body = {**body, "stream": stream, "temperature": 0.3, "some_future_field": {"kept": True}}
    original = copy.deepcopy(body)
    reply = exchange.chat(provider, client_format=client_format, body=body)
    sent = fake.last().body
    expected = {**body, "model": provider.deployment.model}
    if stream and client_format == "openai":
        expected["stream_options"] = {"include_usage": True}  # forced, for accounting
    assert sent == expected and body == original
    if not stream:
        assert isinstance(reply, RawResult)
        assert reply.body == upstream_bytes(fake, path, sent)
    else:
        events = list(reply)
        if client_format == "anthropic":
            assert b"".join(events) == upstream_bytes(fake, path, sent)
        else:  # as received, minus the usage chunk the client did not ask for
            upstream = list(split_events([upstream_bytes(fake, path, sent)]))
            assert b"".join(events) == b"".join(upstream[:-2] + upstream[-1:])
    assert reply.usage == Usage(input_tokens=5, output_tokens=4)


def test_openai_passthrough_stream_keeps_usage_chunk_when_asked(fake, providers):
    body = {**OPENAI_BODY, "stream": True, "stream_options": {"include_usage": True}}
    events = list(exchange.chat(providers["openai"], client_format="openai", body=body))
    chunks = openai_chunks(events)
    assert chunks[-1].usage.prompt_tokens == 5 and chunks[-1].choices == []
    assert fake.last().body == {**body, "model": "upstream-openai"}


@pytest.mark.parametrize("drop_usage", [False, True])
def test_passthrough_writes_what_arrived_together_in_one_chunk(drop_usage):
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}\n\n'
    received = [[b"data: 1\n\n"], [b"data: 2\n\n", b"data: 3\n\n", usage, b"data: [DONE]\n\n"]]

    class Sniffer:
        usage = Usage()
        seen: list[bytes] = []

        def feed(self, event):
            self.seen.append(event)

    sniffer = Sniffer()
    raw = RawStream(iter(received), sniffer=sniffer, close=lambda: None)
    chunks = list(exchange._passed_through(raw, drop_usage=drop_usage))
    rest = b"data: 2\n\ndata: 3\n\n" + (b"" if drop_usage else usage) + b"data: [DONE]\n\n"
    assert chunks == [b"data: 1\n\n", rest]  # one write per arrival, not one per event
    assert sniffer.seen == [e for batch in received for e in batch]  # usage read off every event


def test_embeddings(fake, providers):
    body = {"model": "emb-alias", "input": "some text"}
    result = exchange.embeddings(providers["openai"], body=body)
    assert fake.last().body == {**body, "model": "upstream-openai"} and result.usage.input_tokens == 2
    with pytest.raises(BadRequestError, match="embeddings"):
        exchange.embeddings(providers["anthropic"], body=body)


# --- OpenAI client, Anthropic provider ------------------------------------------------------------

def test_openai_client_to_anthropic(fake, providers):
    body = {**OPENAI_BODY, "response_format": {"type": "json_object"}, "stop": ["zzz"], "user": "u1"}
    reply = exchange.chat(providers["anthropic"], client_format="openai", body=body)
    sent = fake.last()
    assert sent.path == "/v1/messages"
    assert sent.body["system"] == "Be kind.\n\n" + JSON_OBJECT_INSTRUCTION and sent.body["max_tokens"] == 4096
    assert sent.body["metadata"] == {"user_id": "u1"} and sent.body["model"] == "upstream-anthropic"
    completion = openai.types.chat.ChatCompletion.model_validate_json(reply.body)
    assert completion.choices[0].message.content == "echo: hello big world"
    assert completion.choices[0].finish_reason == "stop" and completion.usage.prompt_tokens == reply.usage.input_tokens


def test_openai_client_to_anthropic_tools_and_images(fake, providers):
    body = {"model": "x", "tools": TOOLS, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "call_tool on this"},
                                     {"type": "image_url", "image_url": {"url": PNG}}]}]}
    reply = exchange.chat(providers["anthropic"], client_format="openai", body=body)
    assert fake.last().body["messages"][0]["content"][1]["source"]["type"] == "base64"
    message = openai.types.chat.ChatCompletion.model_validate_json(reply.body).choices[0].message
    assert message.tool_calls[0].function.name == "lookup"
    assert json.loads(message.tool_calls[0].function.arguments) == {"query": "call_tool on this"}


@pytest.mark.parametrize("include_usage", [False, True])
def test_openai_client_to_anthropic_stream_with_tools(fake, providers, include_usage):
    body = {**OPENAI_BODY, "stream": True, "tools": TOOLS, "tool_choice": "required",
            "stream_options": {"include_usage": include_usage}}
    reply = exchange.chat(providers["anthropic"], client_format="openai", body=body)
    chunks = openai_chunks(list(reply))
    calls = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert calls[0].function.name == "lookup"
    assert json.loads("".join(c.function.arguments or "" for c in calls)) == {"query": "hello big world"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert (chunks[-1].usage is not None) == include_usage
    assert reply.usage.input_tokens == 5 and reply.usage.output_tokens > 0


def test_n_above_one_never_reaches_anthropic(fake, providers):
    with pytest.raises(BadRequestError):
        exchange.chat(providers["anthropic"], client_format="openai", body={**OPENAI_BODY, "n": 3})
    assert fake.requests == []


# --- Anthropic client, OpenAI provider ------------------------------------------------------------

@pytest.mark.parametrize(("kind", "max_field"), [("openai", "max_completion_tokens"),
                                                 ("openai-compatible", "max_tokens")])
def test_anthropic_client_to_openai(fake, providers, kind, max_field):
    reply = exchange.chat(providers[kind], client_format="anthropic", body=ANTHROPIC_BODY)
    sent = fake.last().body
    assert sent["messages"][0] == {"role": "system", "content": "Be kind."} and sent[max_field] == 100
    message = anthropic.types.Message.model_validate_json(reply.body)
    assert message.content[0].text == "echo: hello big world" and message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 5 and message.usage.output_tokens == 4


def test_anthropic_client_to_openai_tool_round_trip(fake, providers):
    body = {**ANTHROPIC_BODY, "tools": [{"name": "lookup", "input_schema": {"type": "object"}}], "messages": [
        {"role": "user", "content": "call_tool please"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"}]}]}
    reply = exchange.chat(providers["openai"], client_format="anthropic", body=body)
    assert fake.last().body["messages"][-1] == {"role": "tool", "tool_call_id": "t1", "content": "42"}
    assert anthropic.types.Message.model_validate_json(reply.body).content[0].text == "echo: tool result: 42"


def test_anthropic_client_to_openai_stream(fake, providers):
    body = {**ANTHROPIC_BODY, "stream": True, "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "lookup"}}
    reply = exchange.chat(providers["openai"], client_format="anthropic", body=body)
    events = list(reply)
    adapter = __import__("pydantic").TypeAdapter(anthropic.types.RawMessageStreamEvent)
    parsed = [adapter.validate_python(event_json(e)) for e in events]
    assert [event_name(e) for e in events][0] == "message_start" and parsed[-1].type == "message_stop"
    partial = "".join(p.delta.partial_json for p in parsed if p.type == "content_block_delta")
    assert json.loads(partial) == {"query": "hello big world"}
    delta = next(p for p in parsed if p.type == "message_delta")
    assert delta.delta.stop_reason == "tool_use" and delta.usage.input_tokens == 5
    assert reply.usage == Usage(5, delta.usage.output_tokens)
    assert fake.last().body["stream_options"] == {"include_usage": True}


# --- failures ------------------------------------------------------------------------------------

def test_errors_before_the_stream_raise(fake, providers):
    fake.script(status=429, retry_after="1")
    with pytest.raises(RateLimitedError):
        exchange.chat(providers["anthropic"], client_format="openai", body={**OPENAI_BODY, "stream": True})


@pytest.mark.parametrize(("kind", "client_format", "body"), [
    ("anthropic", "openai", {**OPENAI_BODY, "stream": True}),
    ("openai", "anthropic", {**ANTHROPIC_BODY, "stream": True}),
    ("openai", "openai", {**OPENAI_BODY, "stream": True})])
def test_stream_cut_mid_way_ends_with_an_error_event(fake, providers, kind, client_format, body):
    fake.script(disconnect_after=3)
    reply = exchange.chat(providers[kind], client_format=client_format, body=body)
    events = list(reply)
    assert reply.error is not None and reply.error.kind == "connection"
    last = event_json(events[-1])
    assert (last["type"] == "error") if client_format == "anthropic" else ("error" in last)


@pytest.mark.parametrize(("kind", "client_format", "body"), [
    ("anthropic", "openai", {**OPENAI_BODY, "stream": True}),
    ("openai", "openai", {**OPENAI_BODY, "stream": True})])
def test_client_disconnect_cancels_upstream(fake, providers, kind, client_format, body):
    fake.script(event_delay_s=0.05, text=" ".join(["word"] * 60))
    reply = exchange.chat(providers[kind], client_format=client_format, body=body)
    iterator = iter(reply)
    next(iterator), next(iterator)
    iterator.close()  # what the WSGI server does when the client goes away
    record = fake.streams[-1]
    assert record.done.wait(3) and record.aborted and not record.finished
