#!/bin/sh
# The container's entry point. Before `pligt serve`, initialise the instance on
# the volume if it is new: `pligt init` prints the owner's password once, to the
# container's log (docker logs). Any other command (e.g. `pligt items`) runs as is.
set -eu

if [ "${1:-}" = "pligt" ] && [ "${2:-}" = "serve" ]; then
    pligt init --exist-ok
fi
exec "$@"
