"""The prepared path (``sdk_call.Endpoint``) sends what the SDK's own path sends and fails the same way."""
import pytest

from llmgate.providers import errors
from llmgate.providers.base import Deployment
from llmgate.providers.registry import build_provider
from llmgate.providers.sdk_call import Endpoint
from tests.fakes.fixtures import deployment_for

KINDS = ["openai", "anthropic", "openai-compatible"]
BODIES = {"openai": {"model": "m", "messages": [{"role": "user", "content": "héllo"}], "max_tokens": 5},
          "anthropic": {"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "héllo"}]}}


def endpoint_of(provider):
    return provider._messages if provider.wire_format == "anthropic" else provider._chat


def sdk_path(provider):
    """The same provider with its chat endpoint sent through ``client.post`` (the SDK's full path)."""
    prepared = endpoint_of(provider)
    plain = Endpoint(prepared.client, prepared.path, prepared.errors, http=None, prepared=False)
    if provider.wire_format == "anthropic":
        provider._messages = plain
    else:
        provider._chat = plain
    return provider


@pytest.fixture(params=KINDS)
def pair(request, fake):
    """(prepared, SDK path) providers of one kind, on the fake."""
    prepared = build_provider(deployment_for(fake, request.param))
    plain = sdk_path(build_provider(deployment_for(fake, request.param)))
    assert endpoint_of(prepared).prepared and not endpoint_of(plain).prepared
    yield prepared, plain
    prepared.close()
    plain.close()


# Differ per call on the SDK's path too, or by design (the timeout is the call's).
_VOLATILE = {"content-length"}


@pytest.mark.parametrize("stream", [False, True])
def test_same_request_as_the_sdk(fake, pair, stream):
    prepared, plain = pair
    body = {**BODIES[prepared.wire_format], **({"stream": True} if stream else {})}
    answers = []
    for provider in (prepared, plain):
        result = provider.chat(body, stream=stream, timeout=7.5)
        answers.append(b"".join(result) if stream else result.body)
    first, second = fake.requests
    assert first.path == second.path
    assert {k: v for k, v in first.headers.items() if k not in _VOLATILE} == \
           {k: v for k, v in second.headers.items() if k not in _VOLATILE}
    assert first.raw == second.raw and first.body == body  # the same bytes: compact UTF-8 JSON
    assert first.headers["x-stainless-read-timeout"] == "7.5"
    assert answers[0] == answers[1]


def _failure(provider, stream, timeout=None):
    with pytest.raises(errors.ProviderError) as caught:
        result = provider.chat({**BODIES[provider.wire_format], "stream": stream}, stream=stream, timeout=timeout)
        list(result) if stream else None
    err = caught.value
    return (type(err), err.message, err.status, err.upstream_status, err.retry_after, err.body,
            type(err.__cause__), type(err.__cause__.__cause__) if err.__cause__ else None)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("script", [
    {"status": 400, "message": "bad"}, {"status": 401, "message": "who"}, {"status": 404, "message": "gone"},
    {"status": 429, "message": "slow down", "retry_after": "3"}, {"status": 500, "message": "oops"},
    {"status": 529, "message": "overloaded"}, {"status": 502, "raw_body": b"<html>Bad gateway</html>"},
    {"delay_s": 0.5},
], ids=lambda script: str(script.get("status", "timeout")))
def test_same_errors_as_the_sdk(fake, pair, stream, script):
    prepared, plain = pair
    outcomes = []
    for provider in (prepared, plain):
        fake.script(**script)
        outcomes.append(_failure(provider, stream, timeout=0.1 if "delay_s" in script else None))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("kind", KINDS)
def test_same_error_when_nobody_listens(kind, fake):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    deployment = Deployment(name="x", provider=kind, model="m", api_key="k",
                            api_base=base if kind == "anthropic" else base + "/v1")
    prepared, plain = build_provider(deployment), sdk_path(build_provider(deployment))
    try:
        outcomes = [_failure(provider, False) for provider in (prepared, plain)]
        assert outcomes[0] == outcomes[1] and outcomes[0][0] is errors.ConnectionFailed
    finally:
        prepared.close()
        plain.close()


def test_without_a_static_key_the_sdk_builds_every_request(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    provider = build_provider(deployment_for(fake, "openai", api_key=None))
    try:
        assert not provider._chat.prepared
        provider.chat(BODIES["openai"], stream=False)
        assert fake.requests[0].headers["authorization"] == "Bearer sk-from-env"
    finally:
        provider.close()


def test_embeddings_are_prepared_too(fake):
    provider = build_provider(deployment_for(fake, "openai"))
    try:
        assert provider._embeddings.prepared
        result = provider.embeddings({"model": "m", "input": "x"})
        assert result.status == 200 and fake.requests[0].path == "/v1/embeddings"
    finally:
        provider.close()
