"""``/api/batches``: tabular batches over HTTP — submit, dry run, progress, actions, signed downloads."""
from __future__ import annotations

import csv
import io
import json
import time

import pytest

from tests.batches.conftest import FAST, drain, models_for  # noqa: F401
from tests.batches.conftest import batch_app, bclient, fake, fake_server, files_dir, headers, models_file  # noqa: F401
from tests.batches.conftest import owner, owner_key  # noqa: F401

CSV = "name,city\nAnn,Rome\nBob,=HYPERLINK(\"http://evil\")\nCy,Paris\n"
SCHEMA = {"type": "object", "properties": {"country": {"type": "string"}, "population": {"type": "integer"}},
          "required": ["country", "population"]}


def submit(client, headers, content=CSV, filename="people.csv", **fields):
    data = {"model": "gpt", "template": "Where is {{ city }}? Asked by {{ name }}.", **fields}
    data = {k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in data.items()}
    raw = content.encode() if isinstance(content, str) else content
    return client.post("/api/batches", headers=headers, content_type="multipart/form-data",
                       data={**data, "file": (io.BytesIO(raw), filename)})


def files_left(files_dir):
    return sorted(p.name for p in files_dir.rglob("*")) if files_dir.exists() else []


def download(client, headers, batch_id, fmt="csv"):
    link = client.get(f"/api/batches/{batch_id}/download?format={fmt}", headers=headers)
    assert link.status_code == 200, link.get_json()
    url = link.get_json()["url"]
    return client.get(url.split("localhost", 1)[-1])  # no auth headers: the signature is the permission


def test_tabular_batch_answers_each_row_and_exports_safely(batch_app, bclient, headers, fake):
    created = submit(bclient, headers, params={"temperature": 0})
    assert created.status_code == 202, created.get_json()
    batch = created.get_json()
    assert batch["kind"] == "tabular" and batch["progress"]["total"] == 3
    drain(batch_app, batch["id"])
    done = bclient.get(f"/api/batches/{batch['id']}", headers=headers).get_json()
    assert done["status"] == "completed" and done["progress"]["completed"] == 3
    assert done["progress"]["cost_usd"] > 0
    response = download(bclient, headers, batch["id"])
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.data.decode())))
    assert [r["name"] for r in rows] == ["Ann", "Bob", "Cy"]
    assert rows[0]["answer"] == "echo: Where is Rome? Asked by Ann."
    assert rows[1]["city"].startswith("'=HYPERLINK")  # formula injection neutralised
    assert rows[1]["answer"].startswith("echo: Where is =HYPERLINK")  # answer starts with 'echo', left alone
    assert int(rows[0]["input_tokens"]) > 0 and rows[0]["error"] == ""
    assert fake.requests[0].body["temperature"] == 0

    for fmt in ("parquet", "jsonl", "xlsx", "tsv"):
        assert download(bclient, headers, batch["id"], fmt).status_code == 200
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(download(bclient, headers, batch["id"], "xlsx").data)).active
    cells = [c.value for c in list(sheet.iter_rows())[2]]
    assert cells[1].startswith("'=HYPERLINK") and sheet.cell(3, 2).data_type == "s"


def test_schema_answers_are_validated_reasked_once_and_spread_into_columns(batch_app, bclient, headers, fake):
    fake.script(json_reply={"country": "Italy", "population": "many"})  # invalid: re-asked
    fake.script(json_reply={"country": "Italy", "population": 3})
    created = submit(bclient, headers, content="name,city\nAnn,Rome\n", schema=SCHEMA)
    assert created.status_code == 202, created.get_json()
    drain(batch_app, created.get_json()["id"])
    rows = list(csv.DictReader(io.StringIO(download(bclient, headers, created.get_json()["id"]).data.decode())))
    assert rows[0]["country"] == "Italy" and rows[0]["population"] == "3" and rows[0]["error"] == ""
    first, second = fake.requests[0].body, fake.requests[1].body
    assert first["response_format"]["type"] == "json_schema"
    assert "population" in second["messages"][-1]["content"] and second["messages"][-2]["role"] == "assistant"
    assert len(fake.requests) == 2


def test_schema_still_invalid_after_reask_is_a_row_error(batch_app, bclient, headers, fake):
    fake.script(json_reply={"country": 1}, times=2)
    created = submit(bclient, headers, content="name,city\nAnn,Rome\n", schema=SCHEMA)
    final = drain(batch_app, created.get_json()["id"])
    assert final.failed == 1
    rows = list(csv.DictReader(io.StringIO(download(bclient, headers, final.id).data.decode())))
    assert rows[0]["error"].startswith("schema:") and len(fake.requests) == 2


def test_dry_run_renders_and_estimates_without_spending(batch_app, bclient, headers, fake, files_dir):
    data = {"model": "gpt", "template": "Where is {{ city }}?", "sample": "2", "params": json.dumps({"max_tokens": 10}),
            "file": (io.BytesIO(CSV.encode()), "people.csv")}
    result = bclient.post("/api/batches/dry-run", headers=headers, data=data, content_type="multipart/form-data")
    assert result.status_code == 200, result.get_json()
    body = result.get_json()
    assert body["rows"] == 3 and body["columns"] == ["name", "city"]
    assert [p["messages"][0]["content"] for p in body["prompts"]] == ["Where is Rome?", "Where is =HYPERLINK(\"http://evil\")?"]
    assert body["estimate"]["output_tokens_max"] == 30 and body["estimate"]["cost_usd_max"] > 0
    assert fake.requests == [] and files_left(files_dir) == []
    with batch_app.app_context():
        from llmgate.extensions import db
        from llmgate.models.batch import Batch

        assert db.session.query(Batch).count() == 0


def test_dry_run_names_unknown_template_variables(bclient, headers):
    data = {"model": "gpt", "template": "{{ city }} {{ contry }} {{ nmae }}", "file": (io.BytesIO(CSV.encode()), "p.csv")}
    result = bclient.post("/api/batches/dry-run", headers=headers, data=data, content_type="multipart/form-data")
    assert result.status_code == 422
    assert "contry" in result.get_json()["message"] and "nmae" in result.get_json()["message"]


@pytest.mark.parametrize("content, filename, status, words", [
    ("name,city\nAnn,Rome,extra\nBob,Paris\n", "p.csv", 400, "malformed"),
    ("name,city\nAnn,Rome\nBob,Paris,x,y\n", "p.csv", 400, "malformed"),
    ("name,city\nAnn,R\xf6me\n".encode("latin-1"), "p.csv", 400, "UTF-8"),
    ("name,town\nAnn,Rome\n", "p.csv", 422, "city"),
    ("", "p.csv", 400, "empty"),
    ("name,city\n", "p.csv", 400, "no rows"),
    ("not a parquet file", "p.parquet", 400, "Parquet"),
    ("not excel", "p.xlsx", 400, "XLSX"),
    ("name,city\nAnn,Rome\n", "p.doc", 400, "format"),
])
def test_malformed_uploads_are_refused_leaving_nothing(batch_app, bclient, headers, files_dir, content, filename,
                                                       status, words):
    response = submit(bclient, headers, content=content, filename=filename)
    assert response.status_code == status, response.get_json()
    assert words.lower() in response.get_json()["message"].lower()
    assert files_left(files_dir) == []
    with batch_app.app_context():
        from llmgate.extensions import db
        from llmgate.models.batch import Batch, BatchRow
        from llmgate.models.file import StoredFile

        assert db.session.query(Batch).count() == db.session.query(StoredFile).count() == 0
        assert db.session.query(BatchRow).count() == 0


def test_template_errors_and_sandbox_escapes(batch_app, bclient, headers, fake):
    assert submit(bclient, headers, template="{{ city ").status_code == 422
    escapes = ["{{ ''.__class__.__mro__ }}", "{{ cycler.__init__.__globals__ }}",
               "{{ city.__class__.__base__.__subclasses__() }}", "{{ self.__init__.__globals__ }}",
               "{{ city|attr('__class__') }}", "{{ joiner.__init__.__globals__.os }}"]
    for template in escapes:
        response = submit(bclient, headers, content="city\nRome\n", template=template)
        if response.status_code == 202:  # parsed, so it runs: the row must fail, never leak
            final = drain(batch_app, response.get_json()["id"])
            assert final.failed == 1, template
        else:
            assert response.status_code == 422, (template, response.get_json())
    assert fake.requests == []


def test_oversized_upload_is_413_and_leaves_nothing(app_factory, batch_app, headers, files_dir):
    small = app_factory(MODELS_FILE=batch_app.config["MODELS_FILE"], FILES_DIR=str(files_dir), MAX_UPLOAD_BYTES=1000)
    client = small.test_client()
    big = "name,city\n" + "Ann,Rome\n" * 500
    response = submit(client, headers, content=big)
    assert response.status_code == 413
    v1 = client.post("/v1/files", headers=headers, content_type="multipart/form-data",
                     data={"purpose": "batch", "file": (io.BytesIO(big.encode()), "x.jsonl")})
    assert v1.status_code == 413 and v1.get_json()["error"]["type"] == "invalid_request_error"
    assert files_left(files_dir) == []


def test_signed_links_expire_and_cannot_be_forged(app_factory, batch_app, bclient, headers):
    batch = submit(bclient, headers).get_json()
    assert bclient.get(f"/api/batches/{batch['id']}/download", headers=headers).status_code == 409
    drain(batch_app, batch["id"])
    link = bclient.get(f"/api/batches/{batch['id']}/download", headers=headers).get_json()
    path = link["url"].split("localhost", 1)[-1]
    assert bclient.get(path).status_code == 200
    assert bclient.get(path[:-3] + "abc").status_code == 403
    short = app_factory(MODELS_FILE=batch_app.config["MODELS_FILE"], FILES_DIR=batch_app.config["FILES_DIR"],
                        BATCH_DOWNLOAD_TTL_S=1)
    time.sleep(2.1)
    expired = short.test_client().get(path)
    assert expired.status_code == 403 and "expired" in expired.get_json()["message"]


def test_others_cannot_see_or_act_on_a_batch(batch_app, bclient, headers, make_user, make_key):
    batch = submit(bclient, headers).get_json()
    other = {"Authorization": f"Bearer {make_key(make_user('other@example.com'))[0]}"}
    assert bclient.get(f"/api/batches/{batch['id']}", headers=other).status_code == 404
    assert bclient.post(f"/api/batches/{batch['id']}/cancel", headers=other).status_code == 404
    assert bclient.get("/api/batches", headers=other).get_json()["data"] == []


def test_pause_resume_and_cancel_in_process(batch_app, bclient, headers, fake):
    batch = submit(bclient, headers, content="city\n" + "Rome\n" * 12, template="{{ city }}").get_json()
    with batch_app.app_context():  # load the rows without running them
        from llmgate.batches.ingest import ingest

        assert ingest(batch_id=batch["id"]).status == "in_progress"
    paused = bclient.post(f"/api/batches/{batch['id']}/pause", headers=headers).get_json()
    assert paused["status"] == "paused" and paused["pause_reason"]
    assert bclient.post(f"/api/batches/{batch['id']}/pause", headers=headers).status_code == 200
    resumed = bclient.post(f"/api/batches/{batch['id']}/resume", headers=headers).get_json()
    assert resumed["status"] == "in_progress"
    final = drain(batch_app, batch["id"])
    assert final.status == "completed" and final.completed == 12
    assert bclient.post(f"/api/batches/{batch['id']}/cancel", headers=headers).status_code == 409


def test_jsonl_and_parquet_inputs(batch_app, bclient, headers, tmp_path):
    import pandas as pd

    lines = "".join(json.dumps({"city": c, "n": i}) + "\n" for i, c in enumerate(["Rome", "Oslo"]))
    batch = submit(bclient, headers, content=lines, filename="c.jsonl", template="{{ city }} {{ n + 1 }}").get_json()
    assert drain(batch_app, batch["id"]).completed == 2
    parquet = tmp_path / "c.parquet"
    pd.DataFrame({"city": ["Rome", "Oslo"], "n": [1, 2]}).to_parquet(parquet)
    batch = submit(bclient, headers, content=parquet.read_bytes(), filename="c.parquet",
                   template="{{ city }} {{ n * 2 }}").get_json()
    final = drain(batch_app, batch["id"])
    assert final.completed == 2
    rows = list(csv.DictReader(io.StringIO(download(bclient, headers, batch["id"]).data.decode())))
    assert rows[1]["answer"] == "echo: Oslo 4"
