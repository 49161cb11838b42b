"""Soft budget limits: logged and posted (signed) once per period; webhook URL safety."""
from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from llmgate import metrics, webhooks
from llmgate.accounting import gate
from llmgate.auth.principal import Budget
from llmgate.errors import ValidationError
from llmgate.extensions import get_queue
from llmgate.providers.base import Price, Usage

from .conftest import NOON, make_deployment, make_principal


@pytest.fixture
def receiver():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def _spend(principal, now):
    admission = gate.admit(principal=principal, deployment=make_deployment(price=Price(1.0, 1.0)),
                           estimated_tokens=1, attempt=0, now=now)
    gate.settle(admission, usage=Usage(300_000, 0), outcome="ok", error_kind=None, latency_ms=1.0, ttft_ms=None,
                request_id="r")  # $0.30


def test_soft_limit_fires_once_per_period_with_a_signed_webhook(ctx, receiver):
    url, received = receiver
    ctx.config.update(BUDGET_WEBHOOK_URL=url, WEBHOOK_ALLOWLIST=["127.0.0.1"])
    p = make_principal(key_budget=Budget(limit_usd=10.0, period="day", soft_limit_usd=0.5))
    fired = metrics.BUDGET_SOFT_LIMIT.labels(scope="key", period="day")._value.get()
    for hour in range(4):  # $0.30 .. $1.20: crosses $0.50 on the second call only
        _spend(p, NOON + timedelta(hours=hour))
    _spend(p, NOON + timedelta(days=1))
    _spend(p, NOON + timedelta(days=1, hours=1))  # next day: crosses again, once
    assert metrics.BUDGET_SOFT_LIMIT.labels(scope="key", period="day")._value.get() == fired + 2
    jobs = get_queue("default").jobs
    assert len(jobs) == 2
    for job in jobs:
        assert job.perform() == 204
    headers, body = received[0]
    assert webhooks.verify(body, webhooks.secret_for(ctx.config), headers["X-LLMGate-Signature"])
    payload = json.loads(body)
    assert payload["event"] == "budget.soft_limit_reached" and payload["scope"] == "key"
    assert payload["spent_usd"] == pytest.approx(0.6) and payload["bucket"] == "d20260310"
    assert json.loads(received[1][1])["bucket"] == "d20260311"


@pytest.mark.parametrize("url", ["http://10.1.2.3/x", "http://127.0.0.1:9/x", "http://[::1]/x", "ftp://example.com/",
                                 "http://169.254.169.254/latest/meta-data", "http://[::ffff:192.168.0.1]/"])
def test_private_or_odd_urls_are_refused(url):
    with pytest.raises(ValidationError) as error:
        webhooks.check_url(url, field="webhook_url")
    assert "webhook_url" in error.value.details


def test_allowlist_and_public_addresses_pass():
    webhooks.check_url("https://93.184.215.14/hook")
    webhooks.check_url("http://10.1.2.3/x", allowlist=["10.0.0.0/8"])
    webhooks.check_url("http://127.0.0.1:8080/x", allowlist=["127.0.0.1"])
