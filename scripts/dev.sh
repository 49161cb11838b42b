#!/usr/bin/env bash
# Set up from nothing and run llmgate on its embedded defaults (SQLite + embedded Redis):
# install, migrate, create the first admin and API key (printed once), then serve with one
# background worker (batches, usage drain) that stops when the server does.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
[ -f models.yaml ] || cp models.example.yaml models.yaml
.venv/bin/llmgate db upgrade
.venv/bin/llmgate setup
.venv/bin/llmgate worker &
worker=$!
trap 'kill "$worker" 2>/dev/null; wait "$worker" 2>/dev/null' EXIT INT TERM
.venv/bin/llmgate run "$@"
