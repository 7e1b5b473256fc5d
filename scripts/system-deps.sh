#!/usr/bin/env bash
# Debian packages the gateway and its tests need (run by `make`, idempotent, quiet when
# everything is present). Benchmarks install their own peers (nginx, wrk) in bench/.
set -euo pipefail
needed=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || needed+=("$pkg")
done
if [ ${#needed[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${needed[*]} (run as root or install them)" >&2
    exit 1
  fi
  apt-get update -qq
  # RUNLEVEL=1: maintainer scripts do not start a service (nginx must not take port 80).
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq "${needed[@]}"
fi
