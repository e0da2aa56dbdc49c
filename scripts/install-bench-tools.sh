#!/usr/bin/env bash
# Installs wrk (Debian's package), the load generator benchmarks/bench_e2e.py drives.
# Without root or apt-get it says so, and the benchmark falls back to its Python client.
set -euo pipefail

command -v wrk >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-bench-tools: wrk is missing; install Debian's wrk package for bench_e2e" \
       "(it falls back to a slower Python client)." >&2
  exit 0
fi
echo "install-bench-tools: installing wrk from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends wrk >/dev/null
