"""``llmgate usage report|flush|prune`` through click's runner."""
from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pandas as pd
import sqlalchemy as sa
from flask.cli import ScriptInfo

from llmgate.accounting import drain, gate
from llmgate.cli import cli
from llmgate.extensions import db, get_redis
from llmgate.models.usage import UsageEvent
from tests.accounting.conftest import make_event


def invoke(runner, app, args):
    return runner.invoke(cli, args, obj=ScriptInfo(create_app=lambda: app))


def _send(app, events):
    with app.app_context():
        for event in events:
            get_redis().xadd(gate.STREAM_KEY, {"e": json.dumps(event)})


def test_flush_then_report_csv_by_day_and_model(app, runner):
    now = datetime.now(timezone.utc)
    _send(app, [make_event(now - timedelta(days=d), model=m, cost="0.1") for d in (0, 1, 2) for m in ("a", "b")])
    flushed = invoke(runner, app, ["usage", "flush"])
    assert flushed.exit_code == 0 and "Wrote 6 usage events; 0 left" in flushed.output
    result = invoke(runner, app, ["usage", "report", "--since", "7d", "--by", "day,model", "--format", "csv",
                                  "--tz", "Europe/Paris"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert list(frame.columns[:2]) == ["day", "model"]
    assert frame.iloc[-1]["day"] == "total" and frame.iloc[-1]["requests"] == 6
    assert frame.iloc[:-1]["requests"].sum() == 6 and abs(frame.iloc[-1]["cost_usd"] - 0.6) < 1e-9


def test_report_json_and_parquet_file(app, runner, tmp_path):
    _send(app, [make_event(datetime.now(timezone.utc) - timedelta(hours=1))])
    invoke(runner, app, ["usage", "flush"])
    as_json = invoke(runner, app, ["usage", "report", "--by", "", "--format", "json"])
    assert json.loads(as_json.stdout)["totals"]["requests"] == 1
    target = tmp_path / "u.parquet"
    assert invoke(runner, app, ["usage", "report", "--format", "parquet", "-o", str(target)]).exit_code == 0
    assert pd.read_parquet(target)["requests"].sum() == 1
    assert invoke(runner, app, ["usage", "report", "--format", "parquet"]).exit_code != 0


def test_prune_keeps_totals(app, runner):
    old = datetime.now(timezone.utc) - timedelta(days=120)
    _send(app, [make_event(old), make_event(old), make_event(datetime.now(timezone.utc))])
    with app.app_context():
        drain.flush()
    result = invoke(runner, app, ["usage", "prune", "--older-than", "90d"])
    assert result.exit_code == 0 and "Deleted 2" in result.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(UsageEvent)) == 1
    report = invoke(runner, app, ["usage", "report", "--since", "200d", "--by", "", "--format", "json"])
    assert json.loads(report.stdout)["totals"]["requests"] == 3


def test_bad_arguments(app, runner):
    bad_group = invoke(runner, app, ["usage", "report", "--by", "week"])
    assert bad_group.exit_code != 0 and "group_by" in bad_group.output
    bad_tz = invoke(runner, app, ["usage", "report", "--tz", "Nowhere/Land"])
    assert bad_tz.exit_code != 0 and "tz" in bad_tz.output
    assert invoke(runner, app, ["usage", "prune", "--older-than", "ninety"]).exit_code != 0
