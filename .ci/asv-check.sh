#!/usr/bin/env bash
# CI: `asv check`, then one sample of every asv benchmark (`asv run --quick`) against the numba_xent installed in
# the active Python (`--python=same`). Nothing is saved. Exits non-zero if any benchmark fails: asv 0.6 already
# exits 2 then, and the log is also searched for asv's "failed" status as a second guard. Last, the dashboard is
# published offline (benchmarks/publish_offline.py) and checked for references to other hosts.
# Takes about a minute on two cores. Set NUMBA_XENT_ASV_SHAPES=full for the table's full-size shapes (slow).
set -euo pipefail
cd "$(dirname "$0")/.."

python -c "import asv" 2>/dev/null || python -m pip install -q "asv>=0.6"
# asv wants a description of this machine; --yes fills it without questions (only if none is stored yet).
host=$(python -c "import socket; print(socket.gethostname())")
grep -qs "\"$host\"" ~/.asv-machine.json || python -m asv machine --yes >/dev/null

python -m asv check --python=same

export NUMBA_XENT_ASV_QUICK=1  # benchmarks/bench_startup.py: one cold and one warm first call, not three
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
set +e
python -m asv run --python=same --quick --show-stderr --durations 5 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
echo "asv-check: asv run --quick exit $status after $(( $(date +%s) - start )) s"
if [ "$status" -ne 0 ] || grep -qE '(failed|timed out)[[:space:]]*$' "$log"; then
    echo "asv-check: a benchmark failed (see above)" >&2
    exit 1
fi

# The dashboard as the README publishes it: `asv publish`, then jQuery, flot, Bootstrap & co. from npm packages
# (`npm pack`, cached in ~/.cache/numba_xent-asv-vendor) instead of CDNs, then the check that no published HTML, CSS
# or JS file loads anything from another host. Non-zero if npm is missing (with no cached tarballs) or the check fails.
python -m benchmarks.publish_offline
