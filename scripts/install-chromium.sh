#!/usr/bin/env bash
# Debian's chromium for the headless browser test (Playwright drives it via
# executable_path; never `playwright install`, which downloads its own browser).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
