"""schemathesis drives every ``/api`` operation in-process from ``/swagger.json``.

Twice: as an admin (a fresh JWT per case) and with no credentials. Whatever it sends, the
app must never answer 5xx, every 4xx must be JSON with a ``message``, and the answer must be
one the spec documents, with the documented content type and body schema.

It takes 15-40 s (with the machine's load), so it runs in the PostgreSQL pass only (``once``); the bugs it found have
deterministic regression tests in ``test_malformed.py`` that run on both backends.
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
FUZZ_SETTINGS = settings(
    max_examples=15,
    deadline=None,            # a first request pays for imports and connection set-up
    derandomize=True,         # the same cases every run: CI is stable, a failure reproduces
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _check_error_body(response) -> None:
    if 400 <= response.status_code < 500:
        assert response.headers.get("content-type", [""])[0].startswith("application/json"), response.text
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"], body
        assert isinstance(body.get("code"), str), body


def _fuzz(app, mode: GenerationMode, headers) -> list[str]:
    """Run every /api operation's cases; return one report per failing operation."""
    schema = schemathesis.openapi.from_wsgi("/swagger.json", app).include(path_regex=r"^/api/")
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case):
            response = case.call(headers=headers())
            case.validate_response(response, checks=CHECKS)
            _check_error_body(response)

        try:
            run()
        except Unsatisfiable:
            # Negative mode needs an input it can make invalid; an operation whose only input is a
            # string in the path (GET /api/batches/download/{token}) has none: every string is valid.
            assert mode is GenerationMode.NEGATIVE, operation.label
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis's FailureGroup is a BaseExceptionGroup
            failures.append(f"{operation.label} ({mode.value}): {type(exc).__name__}: {exc}")
    return failures


@pytest.mark.once
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_as_admin(app, auth_headers, admin, mode):
    failures = _fuzz(app, mode, lambda: auth_headers(admin))
    assert not failures, "\n\n".join(failures)


@pytest.mark.once
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_without_credentials(app, mode):
    failures = _fuzz(app, mode, dict)
    assert not failures, "\n\n".join(failures)
