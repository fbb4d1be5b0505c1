"""Import plus first call, and the extra memory of a forward call, each measured in a fresh interpreter.

The children import the same numba_xent as the benchmark process (asv may have put the commit under test first on
sys.path through ASV_PYTHONPATH, see .ci/asv-add-commit.sh): its parent directory is passed as argv[1] and put
first on sys.path, and they start in a temporary directory so nothing in the current directory shadows it.
It measures what the startup section of ``python -m benchmarks.table`` measures, with asv's repeats.
"""

import os
import statistics
import subprocess
import sys
import tempfile

import numba_xent

# .ci/asv-check.sh sets NUMBA_XENT_ASV_QUICK=1: one cold and one warm process instead of three each.
_REPEATS = 1 if os.environ.get("NUMBA_XENT_ASV_QUICK") == "1" else 3
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(numba_xent.__file__)))

_FIRST_CALL = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
start = time.perf_counter()
import numpy as np
import numba_xent
numba_xent.sparse_cross_entropy(np.zeros((64, 10), dtype=np.float32), np.zeros(64, dtype=np.int64))
print(time.perf_counter() - start)
"""

# First calls with options: float32 fused with class weights and smoothing on long rows; float64 forward.
_FIRST_CALL_OPTIONS = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
start = time.perf_counter()
import numpy as np
import numba_xent
if sys.argv[2] == "float32 fused, class_weight + smoothing":
    numba_xent.sparse_cross_entropy_with_grad(
        np.zeros((64, 1000), dtype=np.float32), np.zeros(64, dtype=np.int64), class_weight=np.ones(1000),
        label_smoothing=0.1)
else:
    numba_xent.sparse_cross_entropy(np.zeros((64, 1000)), np.zeros(64, dtype=np.int64))
print(time.perf_counter() - start)
"""


def _first_call_seconds(cache_dir, child=_FIRST_CALL, *arguments):
    out = subprocess.run(
        [sys.executable, "-c", child, _PACKAGE_ROOT, *arguments],
        check=True,
        capture_output=True,
        text=True,
        cwd=cache_dir,
        env=dict(os.environ, NUMBA_CACHE_DIR=cache_dir),
    )
    return float(out.stdout.split()[-1])


class FirstCall:
    """Seconds from `import numpy` to the end of the first sparse_cross_entropy call, in a fresh process.

    cold: an empty NUMBA_CACHE_DIR, so every kernel compiles; warm: a cache filled by an earlier process.
    Median of 3 processes (1 with NUMBA_XENT_ASV_QUICK=1).
    """

    timeout = 600
    unit = "seconds"

    def setup_cache(self):
        results = {"cold": [], "warm": []}
        with tempfile.TemporaryDirectory(prefix="numba_xent_warm_") as warm_dir:
            _first_call_seconds(warm_dir)
            for _ in range(_REPEATS):
                with tempfile.TemporaryDirectory(prefix="numba_xent_cold_") as cold_dir:
                    results["cold"].append(_first_call_seconds(cold_dir))
                results["warm"].append(_first_call_seconds(warm_dir))
        return {kind: statistics.median(times) for kind, times in results.items()}

    def track_cold_cache(self, medians):
        return medians["cold"]

    def track_warm_cache(self, medians):
        return medians["warm"]


class FirstCallWithOptions:
    """As ``FirstCall`` (cold cache), for other option combinations: each compiles specialisations of its own."""

    params = [["float32 fused, class_weight + smoothing", "float64 forward"]]
    param_names = ["combination"]
    timeout = 600
    unit = "seconds"

    def track_cold_cache(self, combination):
        times = []
        for _ in range(_REPEATS):
            with tempfile.TemporaryDirectory(prefix="numba_xent_cold_") as cold_dir:
                times.append(_first_call_seconds(cold_dir, _FIRST_CALL_OPTIONS, combination))
        return statistics.median(times)


# Peak resident memory added by one warm forward call: VmHWM is reset through /proc/self/clear_refs after the
# inputs exist and the kernels ran twice, so the rise counts every page the call touches, whoever allocates it
# (NumPy, Numba's NRT, malloc). MALLOC_MMAP_THRESHOLD_=65536 stops glibc from raising its mmap threshold after
# the warm-up frees, which would let a temporary of up to 32 MiB reuse resident pages unseen. Linux only.
_FORWARD_MEMORY = r"""
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import numba_xent

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

n_rows, n_classes = int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
logits = rng.standard_normal((n_rows, n_classes), dtype=np.float32)
labels = rng.integers(0, n_classes, n_rows)
for _ in range(2):
    numba_xent.sparse_cross_entropy(logits, labels)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS")
numba_xent.sparse_cross_entropy(logits, labels)
print(status("VmHWM") - before)
"""


class ForwardMemory:
    """Extra peak resident bytes of one forward call (reduction='mean'); O(rows) means flat in n_classes."""

    params = [[4096, 16384], [1000, 32000]]
    param_names = ["n_rows", "n_classes"]
    timeout = 600
    unit = "bytes"

    def setup(self, n_rows, n_classes):
        if not sys.platform.startswith("linux"):
            raise NotImplementedError("needs /proc/self/clear_refs")

    def track_forward_extra_rss(self, n_rows, n_classes):
        with tempfile.TemporaryDirectory(prefix="numba_xent_mem_") as cwd:
            out = subprocess.run(
                [sys.executable, "-c", _FORWARD_MEMORY, _PACKAGE_ROOT, str(n_rows), str(n_classes)],
                check=True,
                capture_output=True,
                text=True,
                cwd=cwd,
                env=dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536"),
            )
        return int(out.stdout.split()[-1])
