"""The error vocabulary on its own: status mapping and Retry-After parsing."""
import email.utils
import time

import pytest

from llmgate.providers import errors


@pytest.mark.parametrize(("status", "cls", "answer"), [
    (400, errors.BadRequestError, 400), (401, errors.AuthenticationError, 502),
    (403, errors.PermissionDeniedError, 502), (404, errors.NotFoundError, 404),
    (408, errors.UpstreamTimeout, 504), (409, errors.UpstreamServerError, 502),
    (413, errors.ContextTooLongError, 413), (422, errors.BadRequestError, 422),
    (429, errors.RateLimitedError, 429), (500, errors.UpstreamServerError, 502),
    (503, errors.UpstreamServerError, 502), (529, errors.UpstreamServerError, 502),
])
def test_from_status_picks_kind_and_answer_status(status, cls, answer):
    err = errors.from_status(status, body={"error": {"message": "nope"}})
    assert type(err) is cls
    assert (err.status, err.upstream_status, err.message) == (answer, status, "nope")
    assert err.retryable == (cls in (errors.RateLimitedError, errors.UpstreamTimeout, errors.UpstreamServerError))


@pytest.mark.parametrize("message", [
    "This model's maximum context length is 8192 tokens", "prompt is too long: 210000 tokens > 200000 maximum",
])
def test_context_length_messages_become_context_too_long(message):
    err = errors.from_status(400, body={"error": {"message": message}})
    assert isinstance(err, errors.ContextTooLongError) and err.kind == "context_too_long" and err.status == 400


def test_context_length_code_is_enough():
    err = errors.from_status(400, body={"error": {"message": "x", "code": "context_length_exceeded"}})
    assert isinstance(err, errors.ContextTooLongError)


def test_retry_after_forms():
    assert errors.parse_retry_after({"retry-after": "3"}) == 3.0
    assert errors.parse_retry_after({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    assert errors.parse_retry_after({}) is None and errors.parse_retry_after(None) is None
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < errors.parse_retry_after({"retry-after": date}) <= 30
    assert errors.parse_retry_after({"retry-after": "soon"}) is None


def test_text_bodies_keep_their_text():
    err = errors.from_status(502, body="<html>bad gateway</html>")
    assert err.message == "<html>bad gateway</html>" and err.body == "<html>bad gateway</html>"
