"""Fused linear + cross-entropy, forward plus backward: ours against the GEMM floor and PyTorch.

As a script, the table of the README (float32, the issue's shapes, every library at the same thread count)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.bench_linear            # about 5 minutes
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.bench_linear --repeats 3 --shapes 4096x1024x32000

Rows of the table, for hidden (N, D), weight (V, D), int64 labels, reduction="mean", forward plus backward:

* **ours**: ``numba_xent.linear_cross_entropy_with_grad`` (loss and the three gradients);
* **GEMM floor**: the three matrix products alone, chunked exactly as ours chunks them, through the same BLAS
  calls (logits ``h @ W.T``, ``grad_hidden = g @ W``, ``grad_weight += g.T @ h``), no loss kernel;
* **PyTorch chunked**: ``F.linear_cross_entropy(..., options=torch.nn.LinearCrossEntropyOptions())`` then
  ``backward()``;
* **PyTorch reference**: ``F.cross_entropy(F.linear(h, W), y)`` then ``backward()`` (the whole logits in memory).

Time: median of ``--repeats`` runs after one warm-up, the four rows interleaved run by run so a noisy neighbour
slows them all alike. Memory: each row in a fresh process; the peak resident memory (VmHWM) is reset through
``/proc/self/clear_refs`` after the inputs exist and everything is compiled (on a small problem), and the rise of
the peak over the resident memory before the call is reported, minus the outputs (grad_hidden + grad_weight).

Threads: ``--threads`` (default 2) pins the process to that many CPUs, sets Numba's thread count, both
OpenBLAS pools (NumPy's and SciPy's, via threadpoolctl when installed) and PyTorch's.

asv suites (moderate sizes) are the classes at the end of this file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

SHAPES = {"4096x1024x32000": (4096, 1024, 32000), "2048x512x128000": (2048, 512, 128000)}
ROWS = ("ours", "gemm_floor", "torch_chunked", "torch_reference")
EXTRA_ROWS = ("ours_softcap", "ours_forward")  # softcap=30 forward+backward; the loss alone


def make_inputs(n_rows: int, n_features: int, n_classes: int, dtype=np.float32, seed: int = 0):
    rng = np.random.default_rng(seed)
    hidden = rng.standard_normal((n_rows, n_features), dtype=np.float32).astype(dtype, copy=False)
    weight = (rng.standard_normal((n_classes, n_features), dtype=np.float32) / np.sqrt(n_features)).astype(
        dtype, copy=False
    )
    labels = rng.integers(0, n_classes, size=n_rows, dtype=np.int64)
    return hidden, weight, labels


def gemm_floor(hidden, weight, chunk_size: int):
    """The three products of ours, chunked and called as ours calls them: no loss kernel, no scaling."""
    from numba_xent.linear import _product

    n_rows, n_features = hidden.shape
    logits_buffer = np.empty((chunk_size, weight.shape[0]), hidden.dtype)
    grad_hidden_buffer = np.empty(chunk_size * n_features, hidden.dtype)
    grad_hidden = np.empty_like(hidden)
    grad_weight = np.zeros(weight.shape[::-1], weight.dtype).T  # Fortran order, as ours
    scratch: list = []
    for start in range(0, n_rows, chunk_size):
        stop = min(start + chunk_size, n_rows)
        logits = logits_buffer[: stop - start]
        _product(hidden[start:stop], weight.T, logits, False, scratch)
        _product(logits.T, hidden[start:stop], grad_weight, True, scratch)
        chunk_grad_hidden = grad_hidden_buffer[: logits.shape[0] * n_features].reshape(logits.shape[0], -1, order="F")
        _product(logits, weight, chunk_grad_hidden, False, scratch)
        grad_hidden[start:stop] = chunk_grad_hidden
    return grad_hidden, grad_weight


def default_chunk(hidden, weight) -> int:
    from numba_xent.linear import _prepare

    labels = np.zeros(hidden.shape[0], np.int64)
    problem = _prepare(hidden, weight, labels, None, None, -100, "mean", 0.0, 0.0, None, None)
    return problem.rows_per_chunk(buffers=1)


def make_runner(name: str, hidden, weight, labels):
    """A no-argument callable running one row of the table (forward plus backward unless named otherwise)."""
    if name.startswith("ours"):
        import numba_xent

        if name == "ours_softcap":
            return lambda: numba_xent.linear_cross_entropy_with_grad(hidden, weight, labels, softcap=30.0)
        if name == "ours_forward":
            return lambda: numba_xent.linear_cross_entropy(hidden, weight, labels)
        return lambda: numba_xent.linear_cross_entropy_with_grad(hidden, weight, labels)
    if name == "gemm_floor":
        chunk = default_chunk(hidden, weight)
        return lambda: gemm_floor(hidden, weight, chunk)
    import torch
    import torch.nn.functional as F

    hidden_t = torch.from_numpy(hidden).requires_grad_(True)
    weight_t = torch.from_numpy(weight).requires_grad_(True)
    labels_t = torch.from_numpy(labels)

    def run_torch():
        hidden_t.grad = None
        weight_t.grad = None
        if name == "torch_chunked":
            loss = F.linear_cross_entropy(hidden_t, weight_t, labels_t, options=torch.nn.LinearCrossEntropyOptions())
        else:
            loss = F.cross_entropy(F.linear(hidden_t, weight_t), labels_t)
        loss.backward()
        return loss

    return run_torch


def set_threads(threads: int) -> dict:
    """Same thread count for everyone; returns what each pool reports afterwards."""
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[:threads]
        os.sched_setaffinity(0, cpus)
    import numba

    numba.set_num_threads(threads)
    report = {"numba": numba.get_num_threads()}
    try:
        import scipy.linalg  # noqa: F401  (load SciPy's OpenBLAS so that threadpoolctl sees it)
        import threadpoolctl  # type: ignore[import-untyped]

        threadpoolctl.threadpool_limits(threads)
        for pool in threadpoolctl.threadpool_info():
            library = os.path.basename(pool["filepath"])
            report[library] = f"{pool['num_threads']} threads, {pool.get('architecture')}"
    except ImportError:
        report["blas"] = "threadpoolctl not installed: BLAS thread counts unknown"
    try:
        import torch

        torch.set_num_threads(threads)
        report["torch"] = torch.get_num_threads()
    except ImportError:
        pass
    return report


def measure_rows(shape_name: str, rows, repeats: int, log) -> dict:
    hidden, weight, labels = make_inputs(*SHAPES[shape_name])
    runners = {name: make_runner(name, hidden, weight, labels) for name in rows}
    times: dict = {name: [] for name in rows}
    for run in runners.values():  # warm-up: compile, fault in the pages
        run()
    for repeat in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
        log(f"  {shape_name} run {repeat + 1}: " + ", ".join(f"{n} {t[-1]:.2f}s" for n, t in times.items()))
    return times


def paired_ratio(times: dict, numerator: str, denominator: str) -> float:
    """Median over runs of the ratio within each run (both timed back to back): steadier than a ratio of medians."""
    if numerator not in times or denominator not in times:
        return float("nan")
    return statistics.median(a / b for a, b in zip(times[numerator], times[denominator], strict=True))


def profile_ours(shape_name: str, repeats: int, log) -> str:
    """Where ours spends its time: the chunk loop of linear_cross_entropy_with_grad, phase by phase."""
    import numba_xent
    from numba_xent.linear import _product

    hidden, weight, labels = make_inputs(*SHAPES[shape_name])
    chunk = default_chunk(hidden, weight)
    n_rows, n_features = hidden.shape
    logits_buffer = np.empty((chunk, weight.shape[0]), hidden.dtype)
    scaled = np.empty((chunk, n_features), hidden.dtype)
    grad_hidden_buffer = np.empty(chunk * n_features, hidden.dtype)
    grad_hidden = np.empty_like(hidden)
    grad_weight = np.zeros(weight.shape[::-1], weight.dtype).T
    phases = ("logits GEMM", "loss+grad kernel", "row scaling", "grad_weight GEMM", "grad_hidden GEMM")
    runs: dict = {phase: [] for phase in phases}
    for _ in range(repeats + 1):  # the first is a warm-up
        spent = dict.fromkeys(phases, 0.0)
        for start in range(0, n_rows, chunk):
            stop = min(start + chunk, n_rows)
            rows = stop - start
            t0 = time.perf_counter()
            logits = logits_buffer[:rows]
            _product(hidden[start:stop], weight.T, logits, False, [])
            t1 = time.perf_counter()
            numba_xent.sparse_cross_entropy_with_grad(logits, labels[start:stop], reduction="none", out=logits)
            t2 = time.perf_counter()
            row_scale = np.full((rows, 1), 1.0 / n_rows, hidden.dtype)
            np.multiply(hidden[start:stop], row_scale, out=scaled[:rows])
            t3 = time.perf_counter()
            _product(logits.T, scaled[:rows], grad_weight, True, [])
            t4 = time.perf_counter()
            chunk_grad_hidden = grad_hidden_buffer[: rows * n_features].reshape(rows, -1, order="F")
            _product(logits, weight, chunk_grad_hidden, False, [])
            np.multiply(chunk_grad_hidden, row_scale, out=grad_hidden[start:stop])
            t5 = time.perf_counter()
            for phase, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                spent[phase] += seconds
        for phase in phases:
            runs[phase].append(spent[phase])
    medians = {phase: statistics.median(values[1:]) for phase, values in runs.items()}
    total = sum(medians.values())
    line = f"{shape_name} (chunk {chunk} rows): " + ", ".join(
        f"{phase} {seconds:.2f} s ({100 * seconds / total:.0f}%)" for phase, seconds in medians.items()
    )
    log(line)
    return line


def _measure_memory_child(row: str, shape_name: str, threads: int) -> None:
    """Fresh process: warm up on a small problem, reset the peak, run once, print the peak's rise as JSON."""
    set_threads(threads)
    small = make_inputs(64, 32, 1000)
    make_runner(row, *small)()
    hidden, weight, labels = make_inputs(*SHAPES[shape_name])
    run = make_runner(row, hidden, weight, labels)

    def status(key: str) -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        raise KeyError(key)

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS")
    run()
    outputs = 0 if row == "ours_forward" else hidden.nbytes + weight.nbytes  # the gradients
    print(json.dumps({"peak_rise": status("VmHWM") - before, "outputs": outputs}))


def measure_memory(row: str, shape_name: str, threads: int) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_linear", "--memory-child", row, shape_name, str(threads)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS + EXTRA_ROWS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--profile", action="store_true", help="also time the phases of ours' chunk loop")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        row, shape_name, threads = args.memory_child
        _measure_memory_child(row, shape_name, int(threads))
        return

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    pools = set_threads(args.threads)
    log(f"threads: {pools}")
    lines = [
        "| N x D x V (float32) | row | median time (s) | min (s) | row / GEMM floor | PyTorch chunked / row "
        "| peak extra MiB beyond outputs |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    profiles = []
    for shape_name in args.shapes:
        times = measure_rows(shape_name, args.rows, args.repeats, log)
        for row in args.rows:
            memory = "" if args.no_memory else measure_memory(row, shape_name, args.threads)
            extra = "" if not memory else f"{(memory['peak_rise'] - memory['outputs']) / 2**20:.0f}"
            lines.append(
                f"| {shape_name} | {row} | {statistics.median(times[row]):.2f} | {min(times[row]):.2f} | "
                f"{paired_ratio(times, row, 'gemm_floor'):.2f} | {paired_ratio(times, 'torch_chunked', row):.2f} "
                f"| {extra} |"
            )
            log(lines[-1])
        if args.profile:
            profiles.append(profile_ours(shape_name, args.repeats, log))
    print(f"threads: {pools}")
    print("\n".join(lines))
    if profiles:
        print("\nWhere ours spends its time (medians):\n")
        print("\n".join(f"- {line}" for line in profiles))


if __name__ == "__main__":
    main()


# ------------------------------------------------------------------------------------------------ asv suites

ASV_SHAPES = {"1024x512x32000": (1024, 512, 32000), "256x512x128000": (256, 512, 128000)}


class LinearCrossEntropy:
    """Forward, forward+backward and the GEMM floor at moderate sizes (float32, reduction="mean")."""

    params = [list(ASV_SHAPES)]
    param_names = ["shape"]
    timeout = 600

    def setup(self, shape):
        import numba_xent

        if not hasattr(numba_xent, "linear_cross_entropy_with_grad"):
            raise NotImplementedError("this commit predates linear_cross_entropy")  # asv: skipped, not failed

        self.xent = numba_xent
        self.hidden, self.weight, self.labels = make_inputs(*ASV_SHAPES[shape])
        self.chunk = default_chunk(self.hidden, self.weight)
        self.time_forward(shape)
        self.time_fwd_bwd(shape)
        self.time_gemm_floor(shape)

    def time_forward(self, shape):
        self.xent.linear_cross_entropy(self.hidden, self.weight, self.labels)

    def time_fwd_bwd(self, shape):
        self.xent.linear_cross_entropy_with_grad(self.hidden, self.weight, self.labels)

    def time_gemm_floor(self, shape):
        gemm_floor(self.hidden, self.weight, self.chunk)

    def peakmem_fwd_bwd(self, shape):
        # Whole-process peak RSS, inputs and outputs included (weight and grad_weight dominate).
        self.xent.linear_cross_entropy_with_grad(self.hidden, self.weight, self.labels)
