#!/usr/bin/env bash
# Stop a regtest network started by up.sh, by the pids it recorded, and remove
# its run directory.
#
#   scripts/regtest/down.sh [--dir DIR] [--keep]
#
# --dir DIR   the run directory (default: the last one up.sh started)
# --keep      keep the run directory (logs, data) after stopping
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.sh
. "$HERE/versions.sh"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

DIR=""
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) DIR=${2:?--dir needs a directory}; shift 2 ;;
        --dir=*) DIR=${1#--dir=}; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) rt_die "unknown argument $1" ;;
    esac
done

LAST="$L402_REGTEST_CACHE/last-run"
if [ -z "$DIR" ]; then
    [ -f "$LAST" ] || rt_die "no --dir given and no last run recorded in $LAST"
    DIR=$(cat "$LAST")
fi
[ -d "$DIR" ] || { rt_log "$DIR does not exist: nothing to stop"; exit 0; }
RT_DIR=$(cd "$DIR" && pwd -P)
[ -d "$RT_DIR/pids" ] || [ -f "$RT_DIR/env.sh" ] || rt_die "$RT_DIR is not a regtest run directory"

# Dependents first; then anything else with a pid file.
for name in lnget aperture upstream bob alice btcd; do
    rt_stop "$name"
done
for f in "$RT_DIR"/pids/*.pid; do
    [ -f "$f" ] || continue
    rt_stop "$(basename "$f" .pid)"
done

if [ "$KEEP" = 1 ]; then
    rt_log "stopped; kept $RT_DIR"
else
    rm -rf "$RT_DIR"
    rt_log "stopped; removed $RT_DIR"
fi
if [ -f "$LAST" ] && [ "$(cat "$LAST")" = "$RT_DIR" ] && [ "$KEEP" = 0 ]; then
    rm -f "$LAST"
fi
