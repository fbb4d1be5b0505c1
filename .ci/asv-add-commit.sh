#!/usr/bin/env bash
# Adds commits of numba_xent to the asv history that is kept in the repository (.asv/results/<machine>/).
#
#   .ci/asv-add-commit.sh              # HEAD
#   .ci/asv-add-commit.sh abc123 def456  # any commits, e.g. $(git rev-list --reverse main)
#   NUMBA_XENT_ASV_ARGS="--bench bench_sparse -a rounds=1" .ci/asv-add-commit.sh ...  # extra `asv run` arguments
#
# asv.conf.json uses environment_type "existing" (no per-commit builds: numba_xent is pure Python), so for each
# commit this exports that commit's numba_xent/ to a temporary directory, puts it first on the benchmarks'
# sys.path through ASV_PYTHONPATH, runs the working tree's benchmarks/ (as asv does for every commit) and
# records the results under the commit's hash with --set-commit-hash. Then `asv publish` and `asv preview`.
# Needs asv and numba_xent's dependencies in `python` (e.g. the dev venv activated).
set -euo pipefail
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"

# Results are filed under this host's name, with the CPU model appended when .asv/results/<host>/ already holds
# another CPU's runs: these VMs are handed out on different hardware (Intel Xeon, AMD EPYC) under the same host
# name, and asv compares only runs of one machine. asv describes the machine itself (--yes) the first time.
machine=$(python - <<'EOF'
import json, re, socket
from pathlib import Path
from asv.machine import Machine

host, cpu = socket.gethostname(), Machine.get_defaults()["cpu"]
recorded = Path(".asv/results") / host / "machine.json"
if recorded.is_file() and json.loads(recorded.read_text())["cpu"] != cpu:
    words = re.sub(r"\((r|tm)\)|\b(processor|cpu)\b", " ", cpu.lower())
    host += "-" + re.sub(r"[^a-z0-9]+", "-", words).strip("-")
print(host)
EOF
)
grep -qs "\"$machine\"" ~/.asv-machine.json || python -m asv machine --machine "$machine" --yes >/dev/null
echo "asv-add-commit: results go to .asv/results/$machine/"
# Other jobs on the cores stall the two-thread suites (see benchmarks/README.md): say so, the results would be noise.
load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
if awk -v load="$load" 'BEGIN { exit !(load > 1.0) }'; then
    echo "asv-add-commit: warning: load average $load: other jobs are running, timings will be inflated" >&2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for rev in "${@:-HEAD}"; do
    commit=$(git rev-parse --verify "$rev^{commit}")
    rm -rf "${tmp:?}/$commit"
    mkdir "$tmp/$commit"
    git archive "$commit" numba_xent | tar -x -C "$tmp/$commit"
    echo "asv-add-commit: $(git log -1 --format='%h %s' "$commit")"
    ASV_PYTHONPATH="$tmp/$commit" python -m asv run --python=same --machine "$machine" \
        --set-commit-hash "$commit" --show-stderr ${NUMBA_XENT_ASV_ARGS:-}
done
