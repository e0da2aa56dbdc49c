#!/usr/bin/env bash
# Installs the real services the test suite starts: redis-server, prometheus and promtool
# from Debian's packages. The tests start their own instances on 127.0.0.1 with these
# binaries; nothing is left running. Without root or apt-get, it says what is missing:
# locally those tests then skip, in CI (CI=true) they fail.
# chromium (Debian's package, run headless) opens the demo's HTML report in its test.
set -euo pipefail

missing=()
for binary in redis-server prometheus promtool chromium; do
  command -v "$binary" >/dev/null 2>&1 || missing+=("$binary")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-services: missing ${missing[*]}; install redis-server, prometheus" \
       "and chromium (Debian packages) to run every test." >&2
  [ "${CI:-}" = "true" ] && exit 1
  exit 0
fi

echo "install-services: installing redis-server, prometheus and chromium from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends redis-server prometheus chromium >/dev/null
