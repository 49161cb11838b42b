#!/usr/bin/env bash
# Set up from nothing and run the whole test suite twice: on PostgreSQL + Redis (127.0.0.1),
# then on the embedded defaults (SQLite + embedded Redis). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

PG_URL="${LLMGATE_TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/postgres}"
REDIS_URL="${LLMGATE_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
status=0
# Parallel test processes (pytest-xdist); LLMGATE_TEST_PROCESSES=0 runs them in this process.
PROCS="${LLMGATE_TEST_PROCESSES:-3}"
XDIST=(-n "$PROCS")
[ "$PROCS" = "0" ] && XDIST=()

if .venv/bin/python -c "import psycopg,sys; psycopg.connect('${PG_URL/+psycopg/}', connect_timeout=3).close()" 2>/dev/null \
   && .venv/bin/python -c "import redis; redis.Redis.from_url('$REDIS_URL', socket_connect_timeout=3).ping()" 2>/dev/null; then
  echo "== pass 1/2: PostgreSQL ($PG_URL) + Redis ($REDIS_URL)"
  LLMGATE_TEST_DATABASE_URL="$PG_URL" LLMGATE_TEST_REDIS_URL="$REDIS_URL" .venv/bin/pytest "${XDIST[@]}" "$@" || status=$?
else
  echo "== PostgreSQL or Redis not reachable on 127.0.0.1: the PostgreSQL pass is skipped" >&2
  [ -n "${CI:-}" ] && { echo "CI requires PostgreSQL and Redis" >&2; exit 1; }
fi

echo "== pass 2/2: embedded defaults (SQLite + embedded Redis)"
env -u LLMGATE_TEST_DATABASE_URL -u LLMGATE_TEST_REDIS_URL .venv/bin/pytest "${XDIST[@]}" -m "not once" "$@" || status=$?
exit $status
