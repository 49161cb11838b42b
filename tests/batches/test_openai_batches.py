"""The OpenAI Batch API through /v1/files and /v1/batches, with jobs run in-process."""
from __future__ import annotations

import json

from tests.batches.conftest import chat_lines, drain, upload


def create(client, headers, file_id, endpoint="/v1/chat/completions", **extra):
    return client.post("/v1/batches", headers=headers, json={"input_file_id": file_id, "endpoint": endpoint,
                                                             "completion_window": "24h", **extra})


def test_chat_batch_runs_and_matches_results_by_custom_id(batch_app, bclient, headers, fake):
    file_id = upload(bclient, headers, chat_lines(12) + chat_lines(2, model="claude", prefix="ant")).get_json()["id"]
    created = create(bclient, headers, file_id, metadata={"project": "x"})
    assert created.status_code == 200, created.get_json()
    body = created.get_json()
    assert body["object"] == "batch" and body["status"] == "validating" and body["id"].startswith("batch_")
    assert body["metadata"] == {"project": "x"} and body["expires_at"] - body["created_at"] == 86400

    drain(batch_app, body["id"])
    done = bclient.get(f"/v1/batches/{body['id']}", headers=headers).get_json()
    assert done["status"] == "completed", done
    assert done["request_counts"] == {"total": 14, "completed": 14, "failed": 0}
    assert done["error_file_id"] is None
    assert all(done[f] for f in ("in_progress_at", "finalizing_at", "completed_at"))
    content = bclient.get(f"/v1/files/{done['output_file_id']}/content", headers=headers)
    lines = [json.loads(line) for line in content.data.decode().splitlines()]
    by_id = {line["custom_id"]: line for line in lines}
    assert len(by_id) == 14
    assert by_id["req-3"]["response"]["status_code"] == 200
    assert by_id["req-3"]["response"]["body"]["choices"][0]["message"]["content"] == "echo: hello 3"
    assert by_id["ant-1"]["response"]["body"]["choices"][0]["message"]["content"] == "echo: hello 1"
    assert by_id["ant-1"]["error"] is None and by_id["req-0"]["id"].startswith("batch_req_")
    assert len(fake.requests) == 14


def test_invalid_lines_fail_the_batch_listing_each_line(batch_app, bclient, headers):
    good = chat_lines(1).splitlines()[0]
    lines = [good, "{not json", good,  # duplicate custom_id
             json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"model": "gpt",
                                                                                               "input": "x"}}),
             json.dumps({"custom_id": "b", "method": "POST", "url": "/v1/chat/completions", "body": {
                 "model": "nope", "messages": [{"role": "user", "content": "x"}]}}),
             json.dumps({"custom_id": "c", "method": "POST", "url": "/v1/chat/completions"})]
    file_id = upload(bclient, headers, "\n".join(lines) + "\n").get_json()["id"]
    batch = create(bclient, headers, file_id).get_json()
    drain(batch_app, batch["id"])
    failed = bclient.get(f"/v1/batches/{batch['id']}", headers=headers).get_json()
    assert failed["status"] == "failed" and failed["failed_at"]
    found = {(e["line"], e["code"]) for e in failed["errors"]["data"]}
    assert found == {(2, "invalid_json_line"), (3, "duplicate_custom_id"), (4, "mismatched_url"),
                     (5, "model_not_found"), (6, "missing_required_parameter")}
    with batch_app.app_context():
        from llmgate.extensions import db
        from llmgate.models.batch import BatchRow

        assert db.session.query(BatchRow).count() == 0


def test_upstream_errors_land_in_the_error_file(batch_app, bclient, headers, fake):
    fake.script(status=400, message="bad thing")  # the first request fails without retry
    file_id = upload(bclient, headers, chat_lines(3)).get_json()["id"]
    batch = create(bclient, headers, file_id).get_json()
    drain(batch_app, batch["id"])
    done = bclient.get(f"/v1/batches/{batch['id']}", headers=headers).get_json()
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
    errors = [json.loads(x) for x in bclient.get(f"/v1/files/{done['error_file_id']}/content",
                                                 headers=headers).data.decode().splitlines()]
    assert len(errors) == 1 and errors[0]["response"]["status_code"] == 400
    assert "bad thing" in errors[0]["response"]["body"]["error"]["message"]


def test_embeddings_batch(batch_app, bclient, headers):
    lines = "".join(json.dumps({"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
                                "body": {"model": "gpt", "input": f"text {i}"}}) + "\n" for i in range(3))
    file_id = upload(bclient, headers, lines).get_json()["id"]
    batch = create(bclient, headers, file_id, endpoint="/v1/embeddings").get_json()
    drain(batch_app, batch["id"])
    done = bclient.get(f"/v1/batches/{batch['id']}", headers=headers).get_json()
    assert done["status"] == "completed" and done["request_counts"]["completed"] == 3
    out = [json.loads(x) for x in bclient.get(f"/v1/files/{done['output_file_id']}/content",
                                              headers=headers).data.decode().splitlines()]
    assert out[0]["response"]["body"]["data"][0]["embedding"]


def test_create_validation_and_listing(batch_app, bclient, headers):
    file_id = upload(bclient, headers, chat_lines(1)).get_json()["id"]
    assert create(bclient, headers, file_id, endpoint="/v1/completions").status_code == 422
    assert create(bclient, headers, "file-nope").status_code == 404
    bad_window = bclient.post("/v1/batches", headers=headers, json={
        "input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "1h"})
    assert bad_window.status_code == 422 and bad_window.get_json()["error"]["param"] == "completion_window"
    ids = [create(bclient, headers, file_id).get_json()["id"] for _ in range(3)]
    page = bclient.get("/v1/batches?limit=2", headers=headers).get_json()
    assert [b["id"] for b in page["data"]] == ids[::-1][:2] and page["has_more"] is True
    rest = bclient.get(f"/v1/batches?limit=2&after={page['last_id']}", headers=headers).get_json()
    assert [b["id"] for b in rest["data"]] == [ids[0]] and rest["has_more"] is False


def test_file_listing_pages_both_ways(batch_app, bclient, headers):
    ids = [upload(bclient, headers, chat_lines(1), filename=f"f{i}.jsonl").get_json()["id"] for i in range(5)]
    newest = ids[::-1]
    seen, after = [], None
    while True:  # pages of two, newest first, until has_more says stop
        query = "/v1/files?limit=2" + (f"&after={after}" if after else "")
        page = bclient.get(query, headers=headers).get_json()
        seen += [f["id"] for f in page["data"]]
        after = page["last_id"]
        if not page["has_more"]:
            break
    assert seen == newest
    oldest = bclient.get(f"/v1/files?order=asc&limit=3&after={ids[0]}", headers=headers).get_json()
    assert [f["id"] for f in oldest["data"]] == ids[1:4] and oldest["has_more"] is True
    bad = bclient.get("/v1/files?order=sideways", headers=headers)
    assert bad.status_code == 422 and bad.get_json()["error"]["param"] == "order"


def test_cancel_before_running(batch_app, bclient, headers):
    file_id = upload(bclient, headers, chat_lines(4)).get_json()["id"]
    batch = create(bclient, headers, file_id).get_json()
    cancelled = bclient.post(f"/v1/batches/{batch['id']}/cancel", headers=headers).get_json()
    assert cancelled["status"] == "cancelling" and cancelled["cancelling_at"]
    final = drain(batch_app, batch["id"])
    assert final.status == "cancelled"
