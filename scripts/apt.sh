# Shared by the install scripts: install Debian packages that are missing, as root or through sudo; where there
# is no apt-get, or no way to become root, say what to install and go on (nothing here is required to run).
apt_install() {
  local missing=()
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "Installed already: $*"
    return 0
  fi
  if ! command -v apt-get >/dev/null; then
    echo "No apt-get here: install ${missing[*]} (or their equivalents) with your package manager." >&2
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "Run as root to install ${missing[*]}." >&2; return 0; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
    $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  }
  echo "Installed ${missing[*]}."
}
