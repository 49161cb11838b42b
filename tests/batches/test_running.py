"""Running batches in-process: upstream errors and rate limits, budgets, webhooks, progress."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.batches.conftest import chat_lines, drain, upload


def create(client, headers, content, **extra):
    file_id = upload(client, headers, content).get_json()["id"]
    response = client.post("/v1/batches", headers=headers, json={
        "input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h", **extra})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_upstream_rate_limit_is_retried_and_persistent_errors_become_row_errors(batch_app, bclient, headers, fake):
    fake.script(status=429, retry_after="0")   # retried by the gateway, then fine
    batch = create(bclient, headers, chat_lines(1))
    final = drain(batch_app, batch["id"])
    assert (final.completed, final.failed) == (1, 0) and len(fake.requests) == 2
    fake.script(status=500, times=2)           # first try and its one retry: the row fails
    batch = create(bclient, headers, chat_lines(1, prefix="x"))
    final = drain(batch_app, batch["id"])
    assert (final.completed, final.failed) == (0, 1)
    error = bclient.get(f"/v1/files/{final.error_file_id}/content", headers=headers).data
    assert json.loads(error)["response"]["status_code"] >= 500


def test_spent_budget_pauses_the_batch_and_it_resumes_when_allowed(app_factory, batch_app, make_user, make_key, fake):
    from llmgate.auth import users
    from llmgate.extensions import db
    from llmgate.models.user import User

    user = make_user("thrifty@example.com", budget_usd=0.000001, budget_period="day")
    client = batch_app.test_client()
    headers = {"Authorization": f"Bearer {make_key(user)[0]}"}
    batch = create(client, headers, chat_lines(30))  # more rows than one wave of threads
    paused = drain(batch_app, batch["id"], until=("paused",))
    assert paused.pause_reason.startswith("budget") and paused.completed < 30
    seen = client.get(f"/api/batches/{batch['id']}", headers=headers).get_json()
    assert seen["status"] == "paused" and seen["pause_reason"].startswith("budget")
    with batch_app.app_context():
        users.update_user(user=db.session.get(User, user.id), changes={"budget_usd": 100.0})
    resumer = app_factory(**{k: batch_app.config[k] for k in ("MODELS_FILE", "FILES_DIR")},
                          BATCH_BUDGET_RECHECK_S=0.0)
    final = drain(resumer, batch["id"])
    assert final.status == "completed" and final.completed == 30 and final.failed == 0


class Receiver:
    def __init__(self):
        self.received: list[tuple[dict, bytes]] = []
        self.event = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((dict(self.headers), body))
                outer.event.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_webhook_is_signed_and_verified_by_the_receiver(app_factory, batch_app, headers, receiver):
    from llmgate import webhooks

    allowed = app_factory(**{k: batch_app.config[k] for k in ("MODELS_FILE", "FILES_DIR")},
                          WEBHOOK_ALLOWLIST=["127.0.0.1"], BATCH_CHUNK_ROWS=5)
    client = allowed.test_client()
    batch = create(client, headers, chat_lines(2), webhook_url=receiver.url)
    drain(allowed, batch["id"])
    drain(allowed, batch["id"])  # the webhook job runs after the batch ended
    assert receiver.event.wait(5)
    sent_headers, body = receiver.received[0]
    assert webhooks.verify(body, allowed.config["SECRET_KEY"], sent_headers["X-LLMGate-Signature"])
    payload = json.loads(body)
    assert payload["event"] == "batch.finished" and payload["batch"]["id"] == batch["id"]
    assert payload["batch"]["status"] == "completed" and payload["batch"]["request_counts"]["completed"] == 2


def test_loopback_webhook_is_refused_without_allowlist(bclient, headers, receiver):
    file_id = upload(bclient, headers, chat_lines(1)).get_json()["id"]
    response = bclient.post("/v1/batches", headers=headers, json={
        "input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h",
        "webhook_url": receiver.url})
    assert response.status_code == 422 and "private" in response.get_json()["error"]["message"]
    tabular = bclient.post("/api/batches", headers=headers, json={
        "file_id": file_id, "model": "gpt", "template": "x", "webhook_url": "http://10.0.0.1/hook"})
    assert tabular.status_code == 422


def test_progress_reports_rate_and_eta(batch_app, bclient, headers):
    batch = create(bclient, headers, chat_lines(7))
    drain(batch_app, batch["id"])
    seen = bclient.get(f"/api/batches/{batch['id']}", headers=headers).get_json()
    assert seen["progress"]["completed"] == 7 and seen["progress"]["percent"] == 100.0
    with batch_app.app_context():
        from llmgate.batches import control

        assert control.rows_per_second(batch["id"]) > 0
