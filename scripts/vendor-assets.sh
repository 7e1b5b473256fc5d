#!/usr/bin/env bash
# Fetch the dashboard's JavaScript/CSS from the npm registry at the pinned versions into
# the package (src/dijk/admin/ui/static/vendor/) and the test-only axe-core into
# tests/support/vendor/. Run by `make install`; idempotent (quiet when present). The
# files are not committed: the pins below and static/VENDOR.md are. No Node build step:
# `npm pack` downloads each release tarball as published, and only its dist files are kept.
set -euo pipefail
cd "$(dirname "$0")/.."

# name@version  file-in-package  destination-name  licence
ASSETS=(
  "htmx.org@2.0.11 dist/htmx.min.js htmx.min.js 0BSD"
  "uplot@1.6.32 dist/uPlot.iife.min.js uPlot.iife.min.js MIT"
  "uplot@1.6.32 dist/uPlot.min.css uPlot.min.css MIT"
)
TEST_ASSETS=(
  "axe-core@4.14.1 axe.min.js axe.min.js MPL-2.0"
)
STATIC=src/dijk/admin/ui/static/vendor
TESTS=tests/support/vendor

have_all() {
  local dir=$1; shift
  local entry
  for entry in "$@"; do
    set -- $entry
    [ -s "$dir/$3" ] || return 1
    local base=${1%@*}
    [ -f "$dir/licenses/${base}-${1##*@}.LICENSE" ] || return 1
  done
}

if have_all "$STATIC" "${ASSETS[@]}" && have_all "$TESTS" "${TEST_ASSETS[@]}"; then
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  bash scripts/system-deps.sh npm
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() {
  local dir=$1 spec=$2 file=$3 name=$4 licence=$5
  local base=${spec%@*} version=${spec##*@}
  local unpacked="$work/$base-$version"
  if [ ! -d "$unpacked" ]; then
    mkdir -p "$unpacked"
    local tarball
    tarball=$(cd "$work" && npm pack --silent "$spec" | tail -n 1)
    tar -xzf "$work/$tarball" -C "$unpacked"
    local declared
    declared=$(node -p "require('$unpacked/package/package.json').license")
    if [ "$declared" != "$licence" ]; then
      echo "vendor-assets: $spec declares licence $declared, expected $licence" >&2
      exit 1
    fi
  fi
  mkdir -p "$dir/licenses"
  cp "$unpacked/package/$file" "$dir/$name"
  local licence_file
  licence_file=$(ls "$unpacked/package" | grep -iE '^licen[cs]e' | head -n 1 || true)
  if [ -n "$licence_file" ]; then
    cp "$unpacked/package/$licence_file" "$dir/licenses/${base}-${version}.LICENSE"
  else
    echo "$spec: $licence (no licence file in the package)" > "$dir/licenses/${base}-${version}.LICENSE"
  fi
}

for entry in "${ASSETS[@]}"; do
  fetch "$STATIC" $entry
done
for entry in "${TEST_ASSETS[@]}"; do
  fetch "$TESTS" $entry
done
echo "vendor-assets: fetched ${#ASSETS[@]} dashboard assets and ${#TEST_ASSETS[@]} test assets"
