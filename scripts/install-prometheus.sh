#!/usr/bin/env bash
# Installs the real Prometheus server and promtool (Debian package `prometheus`) used by the integration
# tests and the rule checks (promtool check/test rules, tsdb backfill), if either is missing.
set -euo pipefail
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/bin/$1" ]; }
if have prometheus && have promtool; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package starts a system service on :9090; the tests run their own server on a free port.
($SUDO systemctl stop prometheus 2>/dev/null || $SUDO service prometheus stop 2>/dev/null || true) >/dev/null 2>&1
prometheus --version 2>&1 | head -1
promtool --version 2>&1 | head -1
