"""Each SDK's failures, driven through the fake upstream, come out as the one error vocabulary."""
import socket

import pytest

from llmgate.providers import errors
from llmgate.providers.base import Deployment
from llmgate.providers.registry import build_provider
from tests.fakes.fixtures import deployment_for

KINDS = ["openai", "anthropic", "openai-compatible"]
BODIES = {"openai": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
          "anthropic": {"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}}


def body_for(provider):
    return dict(BODIES[provider.wire_format])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("status", "cls"), [
    (400, errors.BadRequestError), (401, errors.AuthenticationError), (403, errors.PermissionDeniedError),
    (404, errors.NotFoundError), (413, errors.ContextTooLongError), (429, errors.RateLimitedError),
    (500, errors.UpstreamServerError), (503, errors.UpstreamServerError),
])
def test_status_errors_map_to_the_vocabulary(fake, providers, kind, stream, status, cls):
    provider = providers[kind]
    fake.script(status=status, message=f"failure {status}", retry_after="7" if status == 429 else None)
    with pytest.raises(cls) as caught:
        provider.chat({**body_for(provider), "stream": stream}, stream=stream)
    err = caught.value
    assert err.upstream_status == status and err.message == f"failure {status}"
    assert err.retry_after == (7.0 if status == 429 else None)
    # the whole upstream error body, in the provider's own format
    assert err.body["error"]["message"] == f"failure {status}"
    assert ("type" in err.body) == (provider.wire_format == "anthropic")
    assert len(fake.requests) == 1  # SDK retries are off: retrying is the gateway's decision


@pytest.mark.parametrize("kind", KINDS)
def test_retry_after_ms_wins(fake, providers, kind):
    fake.script(status=429, retry_after="7", retry_after_ms="1500")
    with pytest.raises(errors.RateLimitedError) as caught:
        providers[kind].chat(body_for(providers[kind]), stream=False)
    assert caught.value.retry_after == 1.5 and caught.value.retryable


@pytest.mark.parametrize(("kind", "message", "code"), [
    ("openai", "This model's maximum context length is 128000 tokens.", "context_length_exceeded"),
    ("anthropic", "prompt is too long: 250000 tokens > 200000 maximum", None),
    ("openai-compatible", "This model's maximum context length is 4096 tokens. However, you requested 5000", None),
])
def test_context_length_errors(fake, providers, kind, message, code):
    fake.script(status=400, message=message, code=code)
    with pytest.raises(errors.ContextTooLongError) as caught:
        providers[kind].chat(body_for(providers[kind]), stream=False)
    assert caught.value.kind == "context_too_long" and caught.value.status == 400


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True])
def test_timeout(fake, providers, kind, stream):
    fake.script(delay_s=0.5)
    with pytest.raises(errors.UpstreamTimeout) as caught:
        providers[kind].chat({**body_for(providers[kind]), "stream": stream}, stream=stream, timeout=0.1)
    assert caught.value.retryable and caught.value.status == 504


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("kind", KINDS)
def test_refused_connection(kind):
    base = f"http://127.0.0.1:{_closed_port()}"
    provider = build_provider(Deployment(name="x", provider=kind, model="m", api_key="k",
                                         api_base=base if kind == "anthropic" else base + "/v1"))
    try:
        with pytest.raises(errors.ConnectionFailed) as caught:
            provider.chat(dict(BODIES[provider.wire_format]), stream=False)
        assert caught.value.retryable and caught.value.status == 502 and caught.value.upstream_status is None
    finally:
        provider.close()


def test_non_json_error_body(fake, providers):
    fake.script(status=502, raw_body=b"<html>Bad gateway</html>")
    with pytest.raises(errors.UpstreamServerError) as caught:
        providers["openai"].chat(BODIES["openai"], stream=False)
    assert caught.value.body == "<html>Bad gateway</html>"


def test_anthropic_has_no_embeddings(providers, fake):
    with pytest.raises(errors.BadRequestError, match="no embeddings"):
        providers["anthropic"].embeddings({"model": "m", "input": "x"})
    assert fake.requests == []
