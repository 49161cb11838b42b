#!/usr/bin/env bash
# Install Debian's headless-capable Chromium (and its driver) for the dashboard's browser tests.
# Idempotent: does nothing when /usr/bin/chromium is already there. Needs root (CI runs as root).
# Playwright drives this system browser; `playwright install` is never used (it downloads its own).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium chromium-driver fonts-dejavu-core
/usr/bin/chromium --version
