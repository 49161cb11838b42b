"""The service batch jobs call: no Flask request, only an app context; same routing and accounting."""
from __future__ import annotations

import json

import pytest

from llmgate.accounting.gate import STREAM_KEY
from llmgate.auth.principal import Principal
from llmgate.errors import BadRequest, NotFound
from llmgate.extensions import get_redis
from llmgate.gateway import service
from llmgate.providers.errors import BadRequestError, UpstreamServerError


@pytest.fixture
def principal(make_user) -> Principal:
    user = make_user()
    return Principal(user_id=user.id, email=user.email, role="member")


def usage_events(app) -> list[dict]:
    with app.app_context():
        return [json.loads(fields[b"event"] if b"event" in fields else next(iter(fields.values())))
                for _, fields in get_redis().xrange(STREAM_KEY)]


@pytest.mark.parametrize("model, path", [("gpt", "/v1/chat/completions"), ("claude", "/v1/messages")])
def test_complete_chat_returns_an_openai_completion(gateway_app, principal, fake, model, path):
    body = {"model": model, "messages": [{"role": "user", "content": "row 1"}], "stream": True}
    with gateway_app.app_context():
        completion = service.complete_chat(principal=principal, body=body, request_id="req-1", batch_id="b-1")
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == "echo: row 1"
    assert fake.last().path == path and not fake.last().body.get("stream")
    events = usage_events(gateway_app)
    assert len(events) == 1
    assert events[0]["batch_id"] == "b-1" and events[0]["request_id"] == "req-1" and events[0]["outcome"] == "ok"
    assert events[0]["input_tokens"] > 0 and events[0]["deployment_id"] == f"{model}#0"


def test_complete_chat_retries_and_falls_back_with_one_usage_event_per_attempt(gateway_app, principal, fake):
    fake.script(status=500, times=3)
    with gateway_app.app_context():
        completion = service.complete_chat(principal=principal, request_id="r",
                                           body={"model": "flaky", "messages": [{"role": "user", "content": "x"}]})
    assert completion["choices"][0]["message"]["content"] == "echo: x"
    outcomes = [(e["deployment_id"], e["outcome"], e["error_kind"], e["attempt"]) for e in usage_events(gateway_app)]
    assert outcomes == [("flaky#0", "error", "upstream_server", 0), ("flaky#0", "error", "upstream_server", 1),
                        ("flaky#0", "error", "upstream_server", 2), ("claude#0", "ok", None, 3)]


def test_complete_chat_errors_are_domain_and_provider_errors(gateway_app, principal, fake):
    with gateway_app.app_context():
        with pytest.raises(BadRequest):
            service.complete_chat(principal=principal, body={"model": "gpt"}, request_id="r")
        with pytest.raises(NotFound):
            service.complete_chat(principal=principal, body={"model": "ghost", "messages": [{"role": "user",
                                                                                             "content": "x"}]},
                                  request_id="r")
        fake.script(status=400)
        with pytest.raises(BadRequestError):
            service.complete_chat(principal=principal, request_id="r",
                                  body={"model": "gpt", "messages": [{"role": "user", "content": "x"}]})
        fake.script(status=503, times=3)
        with pytest.raises(UpstreamServerError):
            service.complete_chat(principal=principal, request_id="r",
                                  body={"model": "gpt", "messages": [{"role": "user", "content": "x"}]})


def test_restricted_principal(gateway_app, principal):
    restricted = Principal(user_id=principal.user_id, email=principal.email, role="member",
                           allowed_models=frozenset({"claude"}))
    with gateway_app.app_context(), pytest.raises(NotFound):
        service.complete_chat(principal=restricted, request_id="r",
                              body={"model": "gpt", "messages": [{"role": "user", "content": "x"}]})


def test_embed(gateway_app, principal, fake):
    with gateway_app.app_context():
        result = service.embed(principal=principal, body={"model": "gpt", "input": ["a", "b"]}, request_id="r")
        with pytest.raises(BadRequest):
            service.embed(principal=principal, body={"model": "gpt"}, request_id="r")
    assert len(result["data"]) == 2 and fake.last().path == "/v1/embeddings"


def test_catalog_contract(gateway_app):
    from llmgate.gateway.catalog import get_catalog

    with gateway_app.app_context():
        catalog = get_catalog()
        assert "gpt" in catalog.names() and len(catalog.deployments("pool")) == 2
        assert catalog.price("gpt").input_per_mtok == 1.0 and catalog.price("ghost") is None
