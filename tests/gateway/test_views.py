"""The /v1 endpoints end to end: the official SDKs → a live llmgate → the fake upstream.

Error shapes with raw requests use ``app.test_client()``; everything an SDK does goes over HTTP.
"""
from __future__ import annotations

import json
import time

import anthropic
import httpx2
import openai
import pytest

from tests.fakes.upstream import Behaviour

IMAGE = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ANTHROPIC_WEATHER_TOOL = {"name": "get_weather", "description": "Weather in a city",
                          "input_schema": WEATHER_TOOL["function"]["parameters"]}


def usage_events(app, count: int, timeout_s: float = 5.0) -> list[dict]:
    """The usage events in Redis, once there are ``count`` of them (or the time is up): a stream the
    client cut is settled after the client has gone, so a test that cuts one waits for it here
    instead of leaving its event to land in the next test's Redis."""
    from llmgate.accounting.gate import STREAM_KEY
    from llmgate.extensions import get_redis

    with app.app_context():
        redis = get_redis()
        deadline = time.monotonic() + timeout_s
        while redis.xlen(STREAM_KEY) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return [json.loads(next(iter(fields.values()))) for _, fields in redis.xrange(STREAM_KEY)]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# --- OpenAI clients ---------------------------------------------------------------------------------

def test_openai_passthrough_with_llmgate_headers(openai_client, fake):
    raw = openai_client.chat.completions.with_raw_response.create(model="gpt", messages=user("hello there"))
    assert raw.headers["x-request-id"]
    assert float(raw.headers["x-llmgate-overhead-ms"]) >= 0
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello there"
    assert completion.usage.prompt_tokens == 2
    assert fake.last().path == "/v1/chat/completions" and fake.last().body["model"] == "up-gpt"


def test_openai_passthrough_stream(openai_client, fake):
    stream = openai_client.chat.completions.create(model="gpt", messages=user("one two three"), stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: one two three"
    # llmgate asks the upstream for usage (to account for it) but drops it when the client did not ask.
    assert fake.last().body["stream_options"] == {"include_usage": True}
    assert all(c.usage is None for c in chunks)


def test_openai_compatible_provider(openai_client, fake):
    completion = openai_client.chat.completions.create(model="local", messages=user("hi"))
    assert completion.choices[0].message.content == "echo: hi"
    assert fake.last().body["model"] == "up-local"


def test_openai_client_to_anthropic_model(openai_client, fake):
    completion = openai_client.chat.completions.create(
        model="claude", messages=[{"role": "system", "content": "be brief"}, *user("hello")], max_tokens=50)
    assert completion.choices[0].message.content == "echo: hello"
    assert completion.choices[0].finish_reason == "stop"
    sent = fake.last()
    assert sent.path == "/v1/messages" and sent.body["model"] == "up-claude"
    assert sent.body["system"] == "be brief" and sent.body["max_tokens"] == 50


def test_openai_client_to_anthropic_model_tools_and_images(openai_client, fake):
    completion = openai_client.chat.completions.create(
        model="claude", tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": [{"type": "text", "text": "call_tool for Paris"},
                                               {"type": "image_url", "image_url": {"url": IMAGE}}]}])
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and completion.choices[0].finish_reason == "tool_calls"
    sent = fake.last().body
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["messages"][0]["content"][1]["type"] == "image"


def test_openai_client_to_anthropic_model_stream_with_tools(openai_client, fake):
    stream = openai_client.chat.completions.create(
        model="claude", messages=user("call_tool please"), tools=[WEATHER_TOOL], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    args = "".join(tc.function.arguments or "" for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or [])
    assert json.loads(args) == {"query": "call_tool please"}
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0


def test_openai_client_to_anthropic_model_stream_text(openai_client, fake):
    stream = openai_client.chat.completions.create(model="claude", messages=user("a b c"), stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "echo: a b c"


def test_embeddings(openai_client, fake):
    result = openai_client.embeddings.create(model="gpt", input=["one", "two"])
    assert len(result.data) == 2 and result.usage.prompt_tokens > 0
    assert fake.last().path == "/v1/embeddings" and fake.last().body["model"] == "up-gpt"


def test_embeddings_on_an_anthropic_model_is_a_bad_request(openai_client):
    with pytest.raises(openai.BadRequestError):
        openai_client.embeddings.create(model="claude", input="x")


# --- Anthropic clients ------------------------------------------------------------------------------

def test_anthropic_passthrough(anthropic_client, fake):
    message = anthropic_client.messages.create(model="claude", max_tokens=20, messages=user("bonjour"))
    assert message.content[0].text == "echo: bonjour"
    assert fake.last().path == "/v1/messages" and fake.last().body["model"] == "up-claude"


def test_anthropic_passthrough_stream(anthropic_client, fake):
    with anthropic_client.messages.stream(model="claude", max_tokens=20, messages=user("x y")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: x y" and final.usage.output_tokens > 0


def test_anthropic_client_to_openai_model(anthropic_client, fake):
    message = anthropic_client.messages.create(model="gpt", max_tokens=20, system="sys", messages=user("hey"))
    assert message.content[0].text == "echo: hey" and message.stop_reason == "end_turn"
    sent = fake.last()
    assert sent.path == "/v1/chat/completions" and sent.body["messages"][0] == {"role": "system", "content": "sys"}


def test_anthropic_client_to_openai_model_tools_and_images(anthropic_client, fake):
    b64 = IMAGE.split(",", 1)[1]
    message = anthropic_client.messages.create(
        model="gpt", max_tokens=50, tools=[ANTHROPIC_WEATHER_TOOL],
        messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64}},
            {"type": "text", "text": "call_tool for Oslo"}]}])
    tool_use = next(block for block in message.content if block.type == "tool_use")
    assert tool_use.name == "get_weather" and message.stop_reason == "tool_use"
    parts = fake.last().body["messages"][0]["content"]
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/png;base64,")


def test_anthropic_client_to_openai_model_stream(anthropic_client, fake):
    with anthropic_client.messages.stream(model="gpt", max_tokens=20, messages=user("p q")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: p q" and final.stop_reason == "end_turn"


def test_anthropic_client_to_openai_model_stream_with_tools(anthropic_client, fake):
    with anthropic_client.messages.stream(model="gpt", max_tokens=50, tools=[ANTHROPIC_WEATHER_TOOL],
                                          messages=user("call_tool now")) as stream:
        final = stream.get_final_message()
    tool_use = next(block for block in final.content if block.type == "tool_use")
    assert tool_use.input == {"query": "call_tool now"}


# --- models -----------------------------------------------------------------------------------------

def test_openai_models_list_and_retrieve(openai_client):
    names = [m.id for m in openai_client.models.list()]
    assert names == ["gpt", "claude", "local", "pool", "flaky", "broken", "nokey", "slow"]
    assert openai_client.models.retrieve("claude").owned_by == "anthropic"
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("nope")


def test_anthropic_models_list_and_retrieve(anthropic_client):
    page = anthropic_client.models.list()
    assert [m.id for m in page.data][:2] == ["gpt", "claude"]
    every = ["gpt", "claude", "local", "pool", "flaky", "broken", "nokey", "slow"]
    # The SDK's auto-paging follows has_more / last_id through after_id, three at a time.
    assert [m.id for m in anthropic_client.models.list(limit=3)] == every
    first = anthropic_client.models.list(limit=3)
    assert [m.id for m in first.data] == every[:3] and first.has_more and first.last_id == "local"
    back = anthropic_client.models.list(limit=2, before_id="local")
    assert [m.id for m in back.data] == ["gpt", "claude"] and not back.has_more
    for bad in ({"limit": 0}, {"limit": 1001}, {"after_id": "nope"}, {"after_id": "gpt", "before_id": "slow"}):
        with pytest.raises(anthropic.BadRequestError):
            anthropic_client.models.list(**bad)
    assert anthropic_client.models.retrieve("gpt").type == "model"
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.models.retrieve("nope")


def test_key_restricted_to_some_models(live, make_user, make_key, fake):
    plaintext, _ = make_key(make_user(), models=["claude"])
    client = openai.OpenAI(base_url=live.url + "/v1", api_key=plaintext, max_retries=0)
    assert [m.id for m in client.models.list()] == ["claude"]
    client.chat.completions.create(model="claude", messages=user("ok"))
    requests_before = len(fake.requests)
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="gpt", messages=user("no"))
    assert raised.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt")
    ant = anthropic.Anthropic(base_url=live.url, api_key=plaintext, max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        ant.messages.create(model="gpt", max_tokens=5, messages=user("no"))
    assert len(fake.requests) == requests_before


def test_unknown_model(openai_client, anthropic_client):
    with pytest.raises(openai.NotFoundError) as raised:
        openai_client.chat.completions.create(model="no-such-model", messages=user("x"))
    assert "no-such-model" in raised.value.message
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.create(model="no-such-model", max_tokens=5, messages=user("x"))


# --- errors in the caller's format ------------------------------------------------------------------

@pytest.fixture
def raw_client(gateway_app, api_key):
    client = gateway_app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {api_key}"
    return client


@pytest.mark.parametrize("data, message", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
    (b'{"model": "gpt"}', "messages"),
    (b'{"model": "gpt", "messages": []}', "messages"),
])
def test_bad_requests_in_both_formats(raw_client, data, message):
    response = raw_client.post("/v1/chat/completions", data=data, content_type="application/json")
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"]["type"] == "invalid_request_error" and message in body["error"]["message"]
    assert response.headers["x-request-id"] and "x-llmgate-overhead-ms" in response.headers
    response = raw_client.post("/v1/messages", data=data, content_type="application/json")
    assert response.status_code == 400
    body = response.get_json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"


def test_missing_and_wrong_keys(gateway_app, live):
    client = gateway_app.test_client()
    response = client.post("/v1/chat/completions", json={"model": "gpt", "messages": user("x")})
    assert response.status_code == 401 and response.get_json()["error"]["type"] == "authentication_error"
    response = client.post("/v1/messages", json={"model": "gpt", "messages": user("x")})
    assert response.status_code == 401 and response.get_json()["type"] == "error"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=live.url + "/v1", api_key="sk-lg-wrong", max_retries=0).models.list()
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=live.url, api_key="sk-lg-wrong", max_retries=0).messages.create(
            model="claude", max_tokens=5, messages=user("x"))


def test_timeout_header_must_be_a_positive_number(raw_client):
    response = raw_client.post("/v1/chat/completions", json={"model": "gpt", "messages": user("x")},
                               headers={"x-llmgate-timeout": "soon"})
    assert response.status_code == 400 and "x-llmgate-timeout" in response.get_json()["error"]["message"]


# Upstream status → what the SDKs raise. Retryable ones are failed on every attempt (3, with retries).
UPSTREAM_ERRORS = [
    (400, openai.BadRequestError, anthropic.BadRequestError, 1),
    (404, openai.NotFoundError, anthropic.NotFoundError, 1),
    (429, openai.RateLimitError, anthropic.RateLimitError, 3),
    (500, openai.InternalServerError, anthropic.InternalServerError, 3),
    (503, openai.InternalServerError, anthropic.InternalServerError, 3),
]


@pytest.mark.parametrize("status, openai_error, anthropic_error, attempts", UPSTREAM_ERRORS)
def test_upstream_errors_map_to_sdk_exceptions(openai_client, anthropic_client, fake, status, openai_error,
                                               anthropic_error, attempts):
    fake.script(status=status, message=f"scripted {status}", times=attempts)
    with pytest.raises(openai_error) as raised:
        openai_client.chat.completions.create(model="gpt", messages=user("x"))
    assert f"scripted {status}" in raised.value.message
    assert len(fake.requests) == attempts
    fake.script(status=status, message=f"scripted {status}", times=attempts)
    with pytest.raises(anthropic_error):
        anthropic_client.messages.create(model="claude", max_tokens=5, messages=user("x"))


@pytest.mark.parametrize("status", [401, 403])
def test_upstream_refusing_llmgates_credentials_is_a_502_that_hides_the_upstream_message(
        openai_client, anthropic_client, fake, status, caplog):
    fake.script(status=status, message="Incorrect API key provided: sk-proj-****abcd", times=2)
    with pytest.raises(openai.InternalServerError) as raised:
        openai_client.chat.completions.create(model="gpt", messages=user("x"))
    assert raised.value.status_code == 502 and "api_key in models.yaml" in raised.value.message
    assert "sk-proj" not in raised.value.message and len(fake.requests) == 1  # not retried
    with pytest.raises(anthropic.InternalServerError):
        anthropic_client.messages.create(model="claude", max_tokens=5, messages=user("x"))
    said = [r.upstream_message for r in caplog.records if hasattr(r, "upstream_message")]
    assert said and said[0] == "Incorrect API key provided: sk-proj-****abcd"  # the operator sees it


def test_context_too_long_maps_to_bad_request(openai_client, fake):
    fake.script(status=400, code="context_length_exceeded", message="This model's maximum context length is 10")
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.chat.completions.create(model="gpt", messages=user("x"))
    assert raised.value.code == "context_length_exceeded"


def test_upstream_timeout_is_a_server_error_after_retries(openai_client, fake):
    fake.script(delay_s=0.6, times=3)
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as raised:
        openai_client.chat.completions.create(model="slow", messages=user("x"))
    assert raised.value.status_code == 504 and time.monotonic() - started < 3


def test_request_timeout_header_caps_every_attempt(openai_client, fake):
    fake.script(delay_s=1.0, times=3)
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as raised:
        openai_client.chat.completions.create(model="gpt", messages=user("x"),
                                              extra_headers={"x-llmgate-timeout": "0.3"})
    assert raised.value.status_code == 504 and time.monotonic() - started < 0.9


def test_model_whose_key_is_not_set_answers_503_naming_the_variable(openai_client, fake):
    with pytest.raises(openai.InternalServerError) as raised:
        openai_client.chat.completions.create(model="nokey", messages=user("x"))
    assert raised.value.status_code == 503 and "LLMGATE_TEST_NEVER_SET_KEY" in raised.value.message
    assert fake.requests == []


# --- retries, Retry-After, cool-down, fallbacks -----------------------------------------------------

def test_retry_after_a_server_error(openai_client, fake):
    fake.script(status=502)
    completion = openai_client.chat.completions.create(model="gpt", messages=user("again"))
    assert completion.choices[0].message.content == "echo: again" and len(fake.requests) == 2


def test_retry_after_is_honoured(openai_client, fake):
    fake.script(status=429, retry_after_ms="400")
    started = time.monotonic()
    openai_client.chat.completions.create(model="gpt", messages=user("x"))
    assert time.monotonic() - started >= 0.4 and len(fake.requests) == 2


def test_retry_after_beyond_the_cap_is_passed_to_the_client(openai_client, fake):
    fake.script(status=429, retry_after="30")
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as raised:
        openai_client.chat.completions.create(model="gpt", messages=user("x"))
    assert time.monotonic() - started < 1.5 and len(fake.requests) == 1
    assert raised.value.response.headers["retry-after"] == "30"


def test_cooldown_after_repeated_failures(openai_client, fake, gateway_app):
    from llmgate.gateway.health import snapshot

    fake.script(status=500, times=3)
    with pytest.raises(openai.InternalServerError):
        openai_client.chat.completions.create(model="gpt", messages=user("x"))
    with pytest.raises(openai.InternalServerError) as raised:
        openai_client.chat.completions.create(model="gpt", messages=user("x"))
    assert raised.value.status_code == 503 and "cooling down" in raised.value.message
    assert int(raised.value.response.headers["retry-after"]) > 0
    assert len(fake.requests) == 3  # the cooled-down deployment was not called
    with gateway_app.app_context():
        row = next(r for r in snapshot() if r["deployment"] == "gpt#0")
    assert row["state"] == "cooling_down" and row["errors"] == 3


def test_pool_spreads_calls_over_its_deployments(openai_client, fake):
    # Sequential calls often find both deployments idle, and ties are broken at random: 8 calls
    # all went to one deployment once in CI (1 in 128); 32 make that about 1 in 2 billion.
    for _ in range(32):
        openai_client.chat.completions.create(model="pool", messages=user("x"))
    assert {r.body["model"] for r in fake.requests} == {"up-pool-a", "up-pool-b"}


def test_fallback_after_retries(openai_client, fake):
    fake.script(status=500, times=3)
    completion = openai_client.chat.completions.create(model="flaky", messages=user("rescue me"))
    assert completion.choices[0].message.content == "echo: rescue me"
    assert [r.body["model"] for r in fake.requests] == ["up-flaky"] * 3 + ["up-claude"]


def test_context_too_long_falls_back_at_once(openai_client, fake):
    fake.script(status=400, code="context_length_exceeded", message="maximum context length exceeded")
    openai_client.chat.completions.create(model="flaky", messages=user("long"))
    assert [r.body["model"] for r in fake.requests] == ["up-flaky", "up-claude"]


def test_bad_request_is_neither_retried_nor_fallen_back(openai_client, fake):
    fake.script(status=400, message="bad temperature")
    with pytest.raises(openai.BadRequestError):
        openai_client.chat.completions.create(model="flaky", messages=user("x"))
    assert len(fake.requests) == 1


def test_unreachable_deployment_falls_back(openai_client, fake):
    completion = openai_client.chat.completions.create(model="broken", messages=user("hi"))
    assert completion.choices[0].message.content == "echo: hi" and fake.last().body["model"] == "up-gpt"


# --- streams that break -----------------------------------------------------------------------------

def test_stream_failing_before_the_first_byte_is_retried(openai_client, fake):
    fake.script(disconnect_after=0)
    stream = openai_client.chat.completions.create(model="gpt", messages=user("first try"), stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: first try"
    assert len(fake.requests) == 2


def test_stream_cut_by_the_upstream_openai_client_sees_an_error(openai_client, fake):
    fake.script(disconnect_after=3)
    stream = openai_client.chat.completions.create(model="gpt", messages=user("a b c d e f g"), stream=True)
    with pytest.raises(openai.APIError):
        list(stream)
    assert len(fake.requests) == 1


def test_stream_cut_by_the_upstream_anthropic_client_sees_an_error(anthropic_client, fake):
    fake.script(disconnect_after=3)
    with pytest.raises(anthropic.APIStatusError):
        with anthropic_client.messages.stream(model="claude", max_tokens=50, messages=user("a b c d e")) as s:
            list(s.text_stream)


@pytest.mark.parametrize("path, model, body", [
    ("/v1/chat/completions", "gpt", {}),
    ("/v1/chat/completions", "claude", {}),
    ("/v1/messages", "claude", {"max_tokens": 100}),
])
def test_client_disconnect_cancels_the_upstream_stream(live, gateway_app, api_key, fake, path, model, body):
    fake.script(event_delay_s=0.05)
    words = " ".join(f"w{i}" for i in range(60))
    payload = {"model": model, "messages": user(words), "stream": True, **body}
    with httpx2.Client(timeout=10) as client:
        with client.stream("POST", live.url + path, json=payload, headers={"Authorization": f"Bearer {api_key}"}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["x-accel-buffering"] == "no"
            next(r.iter_bytes())
    record = fake.streams[-1]
    assert record.done.wait(5) and record.aborted and not record.finished
    assert [e["outcome"] for e in usage_events(gateway_app, 1)] == ["cancelled"]


# --- accounting and metrics -------------------------------------------------------------------------

def test_rate_limit_headers_and_key_limit(live, make_user, make_key, fake):
    plaintext, _ = make_key(make_user(), rpm=2)
    client = openai.OpenAI(base_url=live.url + "/v1", api_key=plaintext, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="gpt", messages=user("x"))
    assert raw.headers["x-ratelimit-limit-requests"] == "2"
    assert raw.headers["x-ratelimit-remaining-requests"] == "1"
    with client.chat.completions.with_streaming_response.create(model="gpt", messages=user("x"), stream=True) as r:
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
        list(r.iter_lines())
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="gpt", messages=user("x"))
    assert int(raised.value.response.headers["retry-after"]) >= 1
    assert len(fake.requests) == 2


def test_deployment_limit_moves_to_another_deployment(live, gateway_app, api_key, fake, models_path):
    from tests.gateway.conftest import default_models, write_models

    models = default_models(fake)
    for entry in models:
        if entry["name"] == "pool":
            entry["limits"] = {"max_concurrency": 1}
    write_models(models_path, models)
    fake.script(event_delay_s=0.1, times=2)
    payload = {"model": "pool", "messages": user(" ".join(["word"] * 40)), "stream": True}
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx2.Client(timeout=10) as client:
        with client.stream("POST", live.url + "/v1/chat/completions", json=payload, headers=headers) as first, \
                client.stream("POST", live.url + "/v1/chat/completions", json=payload, headers=headers) as second:
            # Keep the iterators: dropping one would close its stream.
            first_chunks, second_chunks = first.iter_bytes(), second.iter_bytes()
            next(first_chunks), next(second_chunks)
            third = client.post(live.url + "/v1/chat/completions", json={**payload, "stream": False},
                                headers=headers)
            assert third.status_code == 429 and "deployment pool#" in third.json()["error"]["message"]
    assert sorted(r.body["model"] for r in fake.requests) == ["up-pool-a", "up-pool-b"]
    # the two streams were cut by the client; the 429 was refused before any attempt
    assert [(e["model"], e["outcome"]) for e in usage_events(gateway_app, 2)] == [("pool", "cancelled")] * 2


def _sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_are_recorded(openai_client, fake):
    labels = {"model": "flaky", "deployment": "flaky#0", "provider": "openai"}
    before = {name: _sample(name, **extra, **labels) for name, extra in (
        ("llmgate_upstream_requests_total", {"outcome": "error"}),
        ("llmgate_upstream_errors_total", {"kind": "upstream_server"}),
        ("llmgate_upstream_retries_total", {}))}
    fallbacks = _sample("llmgate_fallbacks_total", model="flaky", fallback="claude")
    claude = {"model": "claude", "deployment": "claude#0", "provider": "anthropic"}
    tokens_out = _sample("llmgate_upstream_tokens_total", direction="output", **claude)
    ttft = _sample("llmgate_time_to_first_token_seconds_count", **claude)
    fake.script(status=500, times=3)
    stream = openai_client.chat.completions.create(model="flaky", messages=user("m e t r i c s"), stream=True)
    list(stream)
    assert _sample("llmgate_upstream_requests_total", outcome="error", **labels) - before[
        "llmgate_upstream_requests_total"] == 3
    assert _sample("llmgate_upstream_errors_total", kind="upstream_server", **labels) - before[
        "llmgate_upstream_errors_total"] == 3
    assert _sample("llmgate_upstream_retries_total", **labels) - before["llmgate_upstream_retries_total"] == 2
    assert _sample("llmgate_fallbacks_total", model="flaky", fallback="claude") - fallbacks == 1
    assert _sample("llmgate_upstream_tokens_total", direction="output", **claude) > tokens_out
    assert _sample("llmgate_time_to_first_token_seconds_count", **claude) == ttft + 1
    assert _sample("llmgate_upstream_in_flight", **claude) == 0


def test_each_call_is_settled_once_after_the_answer(openai_client, gateway_app, fake):
    openai_client.chat.completions.create(model="gpt", messages=user("one"))
    openai_client.embeddings.create(model="gpt", input="two")
    list(openai_client.chat.completions.create(model="claude", messages=user("three"), stream=True))
    events = usage_events(gateway_app, 3)
    assert sorted((e["model"], e["outcome"]) for e in events) == [("claude", "ok"), ("gpt", "ok"), ("gpt", "ok")]
    assert all(e["input_tokens"] > 0 for e in events)
