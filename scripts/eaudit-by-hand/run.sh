#!/bin/bash
# eAudit by hand in the cfs guest (docs/eaudit-notes.md): patches a copy of the checkout,
# builds it on the host, and runs in-guest.sh (start ecapd, wait for its capture file, an
# openat loop of THREADS x COUNT, SIGINT, print the log with eAudit's own printer).
# Usage: scripts/eaudit-by-hand/run.sh [THREADS [COUNT [ECAPD_OPTS]]]; root; aegis-bench built.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
checkout=${AEGIS_EAUDIT_DIR:-/work/shared/third_party/eaudit}
bin=${AEGIS_BENCH:-$repo/target/debug/aegis-bench}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$checkout" "$work/eaudit"
chmod -R u+w "$work/eaudit"
for patch in "$repo"/patches/eaudit/*.patch; do
    patch -s -d "$work/eaudit" -p1 <"$patch"
done
make -s -C "$work/eaudit" all >/dev/null
gcc -O2 -pthread -o "$work/openloop" "$here/openloop.c"
flock /tmp/aegis-guest.lock "$bin" vm --vm-kernel cfs --userland debian --timeout 900 \
    --file "$work/eaudit:/opt/eaudit" --file "$here/in-guest.sh:/root/in-guest.sh" \
    --bin "$work/openloop" --exec -- \
    env "THREADS=${1:-2}" "COUNT=${2:-1000}" "ECAPD_OPTS=${3:-}" bash /root/in-guest.sh
