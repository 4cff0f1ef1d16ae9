#!/usr/bin/env bash
# The browser of `make test-dashboard` and of scripts/dashboard-screenshots.ts: Debian's chromium
# (driven by playwright-core with executablePath /usr/bin/chromium; playwright never downloads a
# browser of its own). Only that target runs this script. Idempotent: a second run changes nothing.
set -euo pipefail
log() { printf '[setup-browser] %s\n' "$*"; }
if [ -x /usr/bin/chromium ] && dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
  log "chromium is installed: $(/usr/bin/chromium --version 2>/dev/null || echo '?')"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "setup-browser.sh must run as root to install Debian's chromium (apt-get install chromium)" >&2; exit 1; }
log "installing Debian's chromium"
apt-get update -q
# fonts-dejavu-core: a font for the screenshots and for text metrics (chromium's recommends are not
# installed; without any font every glyph is a box).
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
log "chromium installed: $(/usr/bin/chromium --version 2>/dev/null || echo '?')"
