"""``llmgate batch ...`` through Click's runner, with jobs drained in-process."""
from __future__ import annotations

import csv
import json

from llmgate.cli import cli
from tests.batches.conftest import drain
from tests.batches.conftest import batch_app, fake, fake_server, files_dir, models_file  # noqa: F401


def test_submit_status_download_and_list(batch_app, make_user, tmp_path):
    make_user("ops@example.com", role="admin")
    runner = batch_app.test_cli_runner()
    table = tmp_path / "cities.csv"
    table.write_text("city\nRome\nOslo\n")
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"country": {"type": "string"}}}))

    dry = runner.invoke(cli, ["batch", "submit", str(table), "-m", "gpt", "-t", "{{ city }}", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["rows"] == 2

    bad = runner.invoke(cli, ["batch", "submit", str(table), "-m", "gpt", "-t", "{{ town }}"])
    assert bad.exit_code != 0 and "town" in bad.output

    submitted = runner.invoke(cli, ["batch", "submit", str(table), "-m", "gpt", "-t", "In {{ city }}",
                                    "--param", "temperature=0", "--user", "ops@example.com"])
    assert submitted.exit_code == 0, submitted.output
    batch_id = submitted.output.strip().splitlines()[-1]
    assert batch_id.startswith("batch_")
    drain(batch_app, batch_id)

    status = runner.invoke(cli, ["batch", "status", batch_id])
    assert status.exit_code == 0 and "completed" in status.output and "2/2 done" in status.output
    out = tmp_path / "out.csv"
    got = runner.invoke(cli, ["batch", "download", batch_id, "-o", str(out)])
    assert got.exit_code == 0, got.output
    rows = list(csv.DictReader(out.open()))
    assert [r["answer"] for r in rows] == ["echo: In Rome", "echo: In Oslo"]
    assert runner.invoke(cli, ["batch", "download", batch_id, "--format", "parquet", "-o",
                               str(tmp_path / "o.parquet")]).exit_code == 0
    listed = runner.invoke(cli, ["batch", "list"])
    assert batch_id in listed.output
    refused = runner.invoke(cli, ["batch", "pause", batch_id])
    assert refused.exit_code != 0 and "running" in refused.output


def test_cancel_and_wait(batch_app, make_user, tmp_path):
    make_user("ops@example.com", role="admin")
    runner = batch_app.test_cli_runner()
    table = tmp_path / "t.csv"
    table.write_text("city\nRome\n")
    batch_id = runner.invoke(cli, ["batch", "submit", str(table), "-m", "gpt", "-t", "{{ city }}"]).output.split()[-1]
    cancelled = runner.invoke(cli, ["batch", "cancel", batch_id])
    assert cancelled.exit_code == 0 and "cancelling" in cancelled.output
    drain(batch_app, batch_id)
    waited = runner.invoke(cli, ["batch", "status", batch_id])
    assert "cancelled" in waited.output
