#!/usr/bin/env bash
# Fonts for charts and the HTML transcript: Chinese, Japanese and Korean (WenQuanYi Micro Hei, about 5 MB) and
# emoji (Noto Color Emoji); Latin, Greek and Cyrillic come with matplotlib and every system. Debian and Ubuntu;
# elsewhere, install any Noto Sans CJK or WenQuanYi font and an emoji font with the system's package manager.
# Without them those characters show as boxes; nothing else changes.
set -euo pipefail
source "$(dirname "$0")/apt.sh"
apt_install fonts-wqy-microhei fonts-noto-color-emoji
