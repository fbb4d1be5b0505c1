#!/usr/bin/env bash
# Adds commits of numba_xent to the asv history that is kept in the repository (.asv/results/<machine>/).
#
#   .ci/asv-add-commit.sh              # HEAD
#   .ci/asv-add-commit.sh abc123 def456  # any commits, e.g. $(git rev-list --reverse main)
#
# asv.conf.json uses environment_type "existing" (no per-commit builds: numba_xent is pure Python), so for each
# commit this exports that commit's numba_xent/ to a temporary directory, puts it first on the benchmarks'
# sys.path through ASV_PYTHONPATH, runs the working tree's benchmarks/ (as asv does for every commit) and
# records the results under the commit's hash with --set-commit-hash. Then `asv publish` and `asv preview`.
# Needs asv and numba_xent's dependencies in `python` (e.g. the dev venv activated).
set -euo pipefail
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"

# Results are filed under this host's name; asv describes the machine itself (--yes) the first time.
machine=$(python -c "import socket; print(socket.gethostname())")
grep -qs "\"$machine\"" ~/.asv-machine.json || python -m asv machine --yes >/dev/null

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for rev in "${@:-HEAD}"; do
    commit=$(git rev-parse --verify "$rev^{commit}")
    rm -rf "${tmp:?}/$commit"
    mkdir "$tmp/$commit"
    git archive "$commit" numba_xent | tar -x -C "$tmp/$commit"
    echo "asv-add-commit: $(git log -1 --format='%h %s' "$commit")"
    ASV_PYTHONPATH="$tmp/$commit" python -m asv run --python=same --machine "$machine" \
        --set-commit-hash "$commit" --show-stderr
done
