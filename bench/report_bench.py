"""Usage reports at scale: N ledger rows (default 10 million) generated in SQL, rollups built
in SQL, then ``GET /api/usage`` timed for typical queries. PostgreSQL only.

    python bench/report_bench.py --database postgresql+psycopg://postgres@127.0.0.1/postgres [--rows 10000000]

Creates and drops its own database. 50 users × 3 keys each × 6 models, one year of traffic.
"""
from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GENERATE = """
INSERT INTO usage_events (event_id, request_id, ts, key_id, user_id, model, deployment_id, provider,
    input_tokens, output_tokens, cached_tokens, cost_usd, latency_ms, ttft_ms, outcome, error_kind, attempt, batch_id)
SELECT md5(g::text), 'bench', TIMESTAMPTZ '2025-01-01 00:00:00+00' + (g * (31536000.0 / :rows)) * INTERVAL '1 second',
       1 + (g % 150), 1 + (g % 150) / 3, 'model-' || (g % 6), 'model-' || (g % 6) || '#0',
       CASE WHEN g % 6 < 3 THEN 'openai' ELSE 'anthropic' END,
       100 + g % 900, 10 + g % 300, 0, CASE WHEN g % 50 = 0 THEN NULL ELSE (100 + g % 900) * 0.000001 END,
       50 + g % 500, NULL, CASE WHEN g % 97 = 0 THEN 'error' ELSE 'ok' END, NULL, 0, NULL
FROM generate_series(1, :rows) AS g
"""
ROLLUP = """
INSERT INTO {table} ({bucket}, user_id, key_id, model, provider, requests, errors, input_tokens, output_tokens,
    cached_tokens, cost_usd, cost_unknown)
SELECT {expr}, user_id, COALESCE(key_id, 0), model, provider, count(*), count(*) FILTER (WHERE outcome = 'error'),
       sum(input_tokens), sum(output_tokens), sum(cached_tokens), COALESCE(sum(cost_usd), 0),
       count(*) FILTER (WHERE cost_usd IS NULL)
FROM usage_events GROUP BY 1, 2, 3, 4, 5
"""
QUERIES = {
    "year by day, Europe/Paris": {"start": "2025-01-01", "end": "2025-12-31", "group_by": "day", "tz": "Europe/Paris"},
    "year by day (UTC, daily rollup)": {"start": "2025-01-01", "end": "2025-12-31", "group_by": "day"},
    "year by model,user": {"start": "2025-01-01", "end": "2025-12-31", "group_by": "model,user"},
    "month by hour, New York": {"start": "2025-03-01", "end": "2025-03-31", "group_by": "hour",
                                "tz": "America/New_York"},
    "month by day,model, one user, CSV": {"start": "2025-06-01", "end": "2025-06-30", "group_by": "day,model",
                                          "user_id": "7", "format": "csv"},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1/postgres")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    base = make_url(args.database)
    name = f"llmgate_bench_{secrets.token_hex(3)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        run(base.set(database=name).render_as_string(hide_password=False), args)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run(url: str, args) -> None:
    from flask_jwt_extended import create_access_token
    from flask_migrate import upgrade

    from llmgate import create_app
    from llmgate.extensions import db
    from llmgate.models.user import User

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "LLMGATE_ENV": "testing", "TESTING": True,
                      "INSTANCE_PATH": tempfile.mkdtemp(), "SECRET_KEY": "b" * 40, "JWT_SECRET_KEY": "c" * 40,
                      "LOG_LEVEL": "WARNING", "REDIS_URL": "redis://127.0.0.1:6379/12"})
    with app.app_context():
        upgrade()
        started = time.perf_counter()
        db.session.execute(sa.text(GENERATE), {"rows": args.rows})
        db.session.commit()
        generated = time.perf_counter() - started
        started = time.perf_counter()
        db.session.execute(sa.text(ROLLUP.format(table="usage_hourly", bucket="hour", expr="date_trunc('hour', ts)")))
        db.session.execute(sa.text(ROLLUP.format(table="usage_daily", bucket="day",
                                                 expr="(ts AT TIME ZONE 'UTC')::date")))
        db.session.commit()
        rolled = time.perf_counter() - started
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
        counts = {t: db.session.scalar(sa.text(f"SELECT count(*) FROM {t}")) for t in
                  ("usage_events", "usage_hourly", "usage_daily")}
        admin_user = User(email="bench@example.com", password_hash="x", role="admin", active=True)
        db.session.add(admin_user)
        db.session.commit()
        token = create_access_token(identity=admin_user)
    print(f"{counts['usage_events']:,} ledger rows generated in {generated:.0f} s; rollups built in {rolled:.0f} s "
          f"({counts['usage_hourly']:,} hourly, {counts['usage_daily']:,} daily rows)\n")
    client = app.test_client()
    print("| query | rows out | p50 ms | max ms |")
    print("|---|---|---|---|")
    for label, params in QUERIES.items():
        timings = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            response = client.get("/api/usage", query_string=params, headers={"Authorization": f"Bearer {token}"})
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.get_data(as_text=True)[:300]
        out = (len(response.get_json()["rows"]) if params.get("format") != "csv"
               else response.get_data(as_text=True).count("\n") - 2)
        print(f"| {label} | {out} | {statistics.median(timings):.0f} | {max(timings):.0f} |")


if __name__ == "__main__":
    main()
