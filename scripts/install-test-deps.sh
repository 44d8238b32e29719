#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine: the real
# Prometheus tools that interoperability tests compare against, and Vigil with its
# test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for bin in prometheus promtool prometheus-node-exporter amtool; do
  command -v "$bin" >/dev/null 2>&1 || need_apt+=("$bin")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    prometheus prometheus-node-exporter prometheus-alertmanager >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
