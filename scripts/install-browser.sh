#!/usr/bin/env bash
# Debian's Chromium, for the tests that render the HTML transcript in a real browser (they are skipped, with the
# reason, where it is absent). The bot itself never needs a browser.
set -euo pipefail
source "$(dirname "$0")/apt.sh"
apt_install chromium
