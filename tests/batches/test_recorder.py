"""The runner's bookkeeping: one statement per flush keeps the counters exact when another worker
recorded a row first, and the thread count follows the model's max_concurrency."""
from __future__ import annotations

from sqlalchemy import select, update

from tests.batches.conftest import chat_lines, drain, upload


def _batch_with_rows(client, headers, rows: int) -> str:
    file_id = upload(client, headers, chat_lines(rows)).get_json()["id"]
    batch = client.post("/v1/batches", headers=headers, json={
        "input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}).get_json()
    return batch["id"]


def test_a_flush_counts_only_the_rows_it_moved_out_of_pending(batch_app, bclient, headers):
    from llmgate.batches import ingest, runner
    from llmgate.extensions import db
    from llmgate.models.batch import Batch, BatchRow

    batch_id = _batch_with_rows(bclient, headers, 5)
    with batch_app.app_context():
        batch = ingest.ingest(batch_id=batch_id, principal=None)
        ids = list(db.session.execute(select(BatchRow.id).where(BatchRow.batch_id == batch_id)
                                      .order_by(BatchRow.position)).scalars())
        # Another worker already recorded row 1 (and counted it).
        db.session.execute(update(BatchRow).where(BatchRow.id == ids[1]).values(status="done", result={"theirs": 1}))
        db.session.execute(update(Batch).where(Batch.id == batch_id).values(completed=1))
        db.session.commit()
        recorder = runner._Recorder(batch)
        recorder.group = 100
        for i, row_id in enumerate(ids[:4]):
            recorder.add(row_id, "failed" if i == 3 else "done", {"input_tokens": 10, "output_tokens": 1, "cost": 0.5})
        recorder.flush()
        db.session.remove()
        batch = db.session.get(Batch, batch_id)
        assert (batch.completed, batch.failed) == (1 + 2, 1) and recorder.written == 3
        assert (batch.input_tokens, batch.output_tokens, round(batch.cost_usd, 6)) == (30, 3, 1.5)
        results = dict(db.session.execute(select(BatchRow.id, BatchRow.result).where(BatchRow.batch_id == batch_id)).all())
        assert results[ids[1]] == {"theirs": 1} and results[ids[0]]["cost"] == 0.5 and results[ids[4]] is None
        # A second flush of the same rows changes nothing.
        for row_id in ids[:4]:
            recorder.add(row_id, "done", {"input_tokens": 99})
        recorder.flush()
        db.session.remove()
        batch = db.session.get(Batch, batch_id)
        assert (batch.completed, batch.failed, batch.input_tokens) == (3, 1, 30)


def test_threads_follow_the_models_max_concurrency_capped_by_a_setting(app_factory, batch_app, bclient, headers):
    from llmgate.batches import ingest, runner
    from llmgate.extensions import db
    from llmgate.models.batch import Batch

    batch_id = _batch_with_rows(bclient, headers, 1)
    with batch_app.app_context():
        ingest.ingest(batch_id=batch_id, principal=None)  # the model is read from the first row
    paths = {k: batch_app.config[k] for k in ("MODELS_FILE", "FILES_DIR")}
    for overrides, expected in (({}, 8), ({"BATCH_MAX_CONCURRENCY": 3}, 3), ({"BATCH_CONCURRENCY": 2}, 8)):
        app = app_factory(**paths, **overrides)
        with app.app_context():
            assert runner.concurrency_for(db.session.get(Batch, batch_id)) == expected, overrides


def test_one_job_runs_the_next_chunks_of_its_batch(batch_app, bclient, headers, fake, monkeypatch):
    from llmgate.batches import runner

    outcomes = []
    real = runner.run_chunk

    def recorded(**kwargs):
        outcomes.append((kwargs["chunk"], real(**kwargs)))
        return outcomes[-1][1]

    monkeypatch.setattr(runner, "run_chunk", recorded)
    batch_id = _batch_with_rows(bclient, headers, 35)  # 4 chunks of 10
    final = drain(batch_app, batch_id)
    assert (final.completed, final.failed) == (35, 0) and len(fake.requests) == 35
    # The first chunk's job took the other three chunks too; their own jobs found nothing to do.
    assert outcomes[0][0] == 0 and outcomes[0][1].written == 35
    assert all(o.written == 0 for _, o in outcomes[1:])
