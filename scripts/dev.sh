#!/usr/bin/env bash
# Set up from nothing and run llmgate on its embedded defaults (SQLite + embedded Redis):
# install, migrate, create the first admin and API key (printed once), start the server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
[ -f models.yaml ] || cp models.example.yaml models.yaml
.venv/bin/llmgate db upgrade
.venv/bin/llmgate setup
exec .venv/bin/llmgate run "$@"
