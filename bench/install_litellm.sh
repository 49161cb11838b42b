#!/usr/bin/env bash
# Install LiteLLM Proxy into its own virtualenv (bench/.venv-litellm, git-ignored), only for the
# side-by-side numbers of bench/gateway_bench.py. It is deliberately NOT a dependency of llmgate.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-litellm"
python="${PYTHON:-python3}"
# pip's warnings about this machine's unreachable local index mirrors are noise here
pip_() { "$venv/bin/pip" "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip_ install --quiet --upgrade pip
pip_ install --quiet 'litellm[proxy]'
"$venv/bin/python" -c 'from importlib.metadata import version; print("litellm", version("litellm"))'
