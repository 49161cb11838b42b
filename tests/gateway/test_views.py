"""The /v1 endpoints end to end: the official SDKs → a live llmgate → the fake upstream."""
from __future__ import annotations


def test_openai_passthrough(openai_client, fake):
    completion = openai_client.chat.completions.with_raw_response.create(
        model="gpt", messages=[{"role": "user", "content": "hello there"}])
    assert completion.headers["x-request-id"]
    assert float(completion.headers["x-llmgate-overhead-ms"]) >= 0
    parsed = completion.parse()
    assert parsed.choices[0].message.content == "echo: hello there"
    assert fake.last().body["model"] == "up-gpt"
