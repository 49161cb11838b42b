"""Raw calls through the SDKs: bytes as the upstream sent them, usage read on the side, closable streams."""
import httpx2
import pytest

from llmgate.providers import errors
from llmgate.providers.base import Deployment, RawResult, RawStream, Usage
from llmgate.providers.registry import build_provider, provider_class
from tests.fakes.fixtures import deployment_for

OPENAI_BODY = {"model": "upstream-openai", "messages": [{"role": "user", "content": "one two three"}]}
ANTHROPIC_BODY = {"model": "upstream-anthropic", "max_tokens": 50,
                  "messages": [{"role": "user", "content": "one two three"}]}


def direct(fake, path, body):
    """What the fake answers to a plain HTTP client: the bytes the provider must hand back unchanged."""
    fake.app.record = False
    try:
        return httpx2.post(fake.base_url + path, json=body).content
    finally:
        fake.app.record = True


def test_openai_non_stream_bytes_and_usage(fake, providers):
    result = providers["openai"].chat(OPENAI_BODY, stream=False)
    assert isinstance(result, RawResult) and result.status == 200
    assert result.body == direct(fake, "/v1/chat/completions", OPENAI_BODY)
    assert result.usage == Usage(input_tokens=3, output_tokens=4)
    received = fake.requests[0]
    assert received.path == "/v1/chat/completions" and received.body == OPENAI_BODY
    assert received.headers["authorization"] == "Bearer sk-test"


def test_anthropic_non_stream_bytes_and_usage(fake, providers):
    result = providers["anthropic"].chat(ANTHROPIC_BODY, stream=False)
    assert result.body == direct(fake, "/v1/messages", ANTHROPIC_BODY)
    assert result.usage == Usage(input_tokens=3, output_tokens=4)
    received = fake.requests[0]
    assert received.path == "/v1/messages" and received.body == ANTHROPIC_BODY
    # anthropic 2.x sends the key as a bearer token
    assert received.headers["authorization"] == "Bearer sk-test" and "anthropic-version" in received.headers


@pytest.mark.parametrize(("kind", "path", "body"), [
    ("openai", "/v1/chat/completions",
     {**OPENAI_BODY, "stream": True, "stream_options": {"include_usage": True}}),
    ("anthropic", "/v1/messages", {**ANTHROPIC_BODY, "stream": True}),
])
def test_stream_events_pass_as_received(fake, providers, kind, path, body):
    stream = providers[kind].chat(body, stream=True)
    assert isinstance(stream, RawStream)
    events = list(stream)
    assert b"".join(events) == direct(fake, path, body)
    assert all(e.endswith(b"\n\n") for e in events)
    assert stream.usage == Usage(input_tokens=3, output_tokens=4) and stream.closed


def test_openai_stream_without_usage_reports_zero(fake, providers):
    stream = providers["openai"].chat({**OPENAI_BODY, "stream": True}, stream=True)
    assert list(stream)[-1] == b"data: [DONE]\n\n"
    assert stream.usage == Usage()


def test_anthropic_stream_usage_with_cache(fake, providers):
    # message_start carries input and cache reads; message_delta the final output count
    from llmgate.providers.anthropic import AnthropicUsageSniffer
    sniffer = AnthropicUsageSniffer()
    sniffer.feed(b'event: message_start\ndata: {"type":"message_start","message":{"usage":'
                 b'{"input_tokens":5,"cache_read_input_tokens":100,"output_tokens":1}}}\n\n')
    sniffer.feed(b'event: message_delta\ndata: {"type":"message_delta","delta":{},"usage":{"output_tokens":9}}\n\n')
    assert sniffer.usage == Usage(input_tokens=105, output_tokens=9, cached_tokens=100)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_stream_cut_by_upstream_raises_connection_failed(fake, providers, kind):
    fake.script(disconnect_after=3)
    body = {**(OPENAI_BODY if kind == "openai" else ANTHROPIC_BODY), "stream": True}
    stream = providers[kind].chat(body, stream=True)
    received = []
    with pytest.raises(errors.ConnectionFailed):
        for event in stream:
            received.append(event)
    assert len(received) == 3 and stream.closed


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_closing_a_stream_cancels_the_upstream(fake, providers, kind):
    fake.script(event_delay_s=0.05, text=" ".join(["word"] * 60))
    body = {**(OPENAI_BODY if kind == "openai" else ANTHROPIC_BODY), "stream": True}
    stream = providers[kind].chat(body, stream=True)
    next(stream), next(stream)
    stream.close()
    record = fake.streams[-1]
    assert record.done.wait(3), "the fake never noticed the disconnect"
    assert record.aborted and not record.finished and record.events_sent < 20


def test_embeddings_pass_through(fake, providers):
    body = {"model": "upstream-openai", "input": ["a b", "c"]}
    result = providers["openai"].embeddings(body)
    assert result.body == direct(fake, "/v1/embeddings", body)
    assert result.usage == Usage(input_tokens=3)


def test_openai_compatible_without_key(fake):
    provider = build_provider(deployment_for(fake, "openai-compatible", api_key=None))
    try:
        provider.chat(OPENAI_BODY, stream=False)
    finally:
        provider.close()
    assert fake.requests[0].headers["authorization"] == "Bearer not-needed"


def test_openai_compatible_needs_api_base():
    with pytest.raises(ValueError, match="api_base"):
        build_provider(Deployment(name="local", provider="openai-compatible", model="llama"))


def test_registry():
    assert provider_class("anthropic").wire_format == "anthropic"
    with pytest.raises(ValueError, match="unknown provider"):
        provider_class("bard")
    assert Deployment(name="gpt", provider="openai", model="gpt-4o", index=2).id == "gpt#2"


def test_per_call_timeout_overrides_deployment(fake, providers):
    fake.script(delay_s=0.3)
    assert providers["openai"].chat(OPENAI_BODY, stream=False, timeout=2).status == 200
