#!/bin/sh
# Entrypoint of the Dijk image.
#   dijk-entrypoint healthcheck      exit 0 if the admin listener's /healthz answers 200
#   dijk-entrypoint demo-config      write the shipped demo configuration to $DIJK_CONFIG_OUT
#                                    (default /tmp/dijk.yaml), then serve it
#   dijk-entrypoint <dijk command>   run `dijk <command> ...` (serve, config, audit, ...)
#   dijk-entrypoint <other program>  run it (a shell for debugging)
# Configuration keys can be overridden with DIJK_* variables (see the README).
set -eu

[ "$#" -eq 0 ] && set -- serve --config /etc/dijk/dijk.yaml
health_url="${DIJK_HEALTHCHECK_URL:-http://127.0.0.1:${DIJK_ADMIN__PORT:-9090}/healthz}"

case "$1" in
    healthcheck)
        exec python -c 'import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as error:
    print(f"unhealthy: {error}", file=sys.stderr)
    sys.exit(1)' "$health_url"
        ;;
    demo-config)
        shift
        out="${DIJK_CONFIG_OUT:-/tmp/dijk.yaml}"
        dijk demo --print-config > "$out"
        exec dijk serve --config "$out" "$@"
        ;;
    serve|config|audit|privacy|breach|keys|lint|demo|version|--version|--help|--show-completion)
        exec dijk "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
