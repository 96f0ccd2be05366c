#!/usr/bin/env bash
# Install Debian Chromium for the browser tests (tests/test_app_browser.py) when it is missing.
# Playwright drives it through executable_path=/usr/bin/chromium; no browser download by Playwright.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq chromium
/usr/bin/chromium --version
