#!/usr/bin/env bash
# Fonts for charts in Chinese, Japanese and Korean (Latin, Greek and Cyrillic come with matplotlib).
# Debian and Ubuntu: installs WenQuanYi Micro Hei (about 5 MB). Elsewhere, install any Noto Sans CJK or
# WenQuanYi font with the system's package manager; without one, those characters show as boxes in charts.
set -euo pipefail

if fc-list 2>/dev/null | grep -qiE "WenQuanYi|Noto Sans CJK|Droid Sans Fallback"; then
  echo "A CJK font is installed already."
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "No apt-get here: install a Noto Sans CJK or WenQuanYi font with your package manager." >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "Run as root (or install sudo) to install fonts-wqy-microhei." >&2; exit 0; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -qq fonts-wqy-microhei >/dev/null 2>&1 || {
  $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq fonts-wqy-microhei >/dev/null
}
echo "Installed fonts-wqy-microhei."
