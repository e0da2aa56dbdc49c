#!/usr/bin/env bash
# Installs the Debian packages the benchmarks drive: wrk, the load generator of
# benchmarks/bench_e2e.py, and valgrind, whose instruction counts
# benchmarks/count_middleware.py reports. Without root or apt-get it says so: bench_e2e
# falls back to its Python client, count_middleware reports that valgrind is missing.
set -euo pipefail

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-bench-tools: missing ${missing[*]}; install Debian's packages of that name" \
       "(bench_e2e falls back to a slower Python client without wrk)." >&2
  exit 0
fi
echo "install-bench-tools: installing ${missing[*]} from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
