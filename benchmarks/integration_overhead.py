"""Side-by-side timings for the integration layer (issue 9), in one process so the ratios share the machine's load:

- ``evaluate`` against the forward ``sparse_cross_entropy`` on the same logits;
- the PyTorch adapter and the autograd primitive against the plain functions they call (forward, and
  forward + backward against ``sparse_cross_entropy_with_grad``).

Run: ``python benchmarks/integration_overhead.py [evaluate|adapters]``. Prints medians. Not an asv suite (no
``time_`` names); heavy imports are inside the functions.
"""

from __future__ import annotations

import statistics
import sys
import time
from functools import partial

EVALUATE_SHAPES = [(8192, 32000), (4096, 1000), (65536, 10)]
ADAPTER_SHAPES = [(128, 10), (8192, 32000)]


def median_seconds(call, repeats, warmup=2):
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _inputs(shape, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    logits = (2.0 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32, copy=False)
    labels = rng.integers(0, shape[-1], size=shape[:-1], dtype=np.int64)
    return logits, labels


def measure_evaluate():
    import numba

    import numba_xent as nx

    print(
        "| shape | threads | forward ms | evaluate ms (top_k=(1,)) | evaluate ms (top_k=(1, 5)) | evaluate / forward |"
    )
    print("|---|--:|--:|--:|--:|--:|")
    all_threads = numba.get_num_threads()
    for shape in EVALUATE_SHAPES:
        logits, labels = _inputs(shape)
        repeats = 7 if logits.size > 10**8 else 31
        calls = {
            "forward": partial(nx.sparse_cross_entropy, logits, labels),
            "evaluate": partial(nx.evaluate, logits, labels),
            "evaluate5": partial(nx.evaluate, logits, labels, top_k=(1, 5)),
        }
        for threads in sorted({1, all_threads}):
            numba.set_num_threads(threads)
            # Interleaved: each repeat times all three, so drifting load hits them alike.
            samples: dict[str, list[float]] = {name: [] for name in calls}
            for call in calls.values():
                call()
                call()
            for _ in range(repeats):
                for name, call in calls.items():
                    start = time.perf_counter()
                    call()
                    samples[name].append(time.perf_counter() - start)
            forward, evaluate, evaluate5 = (statistics.median(samples[name]) * 1e3 for name in calls)
            print(
                f"| {shape[0]}x{shape[1]} | {threads} | {forward:.3g} | {evaluate:.3g} | {evaluate5:.3g} "
                f"| {evaluate / forward:.2f} |"
            )
        numba.set_num_threads(all_threads)
        del logits


def _backward(loss_function, logits, labels):
    logits.grad = None
    loss_function(logits, labels).backward()


def _swap(function, labels, logits):
    return function(logits, labels)


def measure_adapters():
    import numpy as np

    import numba_xent as nx

    torch = autograd = None
    try:
        import torch

        import numba_xent.torch as nx_torch

        torch.set_num_threads(2)
    except ImportError:
        pass
    try:
        import autograd

        import numba_xent.autograd as nx_autograd
    except ImportError:
        pass

    print(
        "| shape | unit | plain fwd | torch adapter fwd | autograd fwd | plain fwd+grad | torch fwd+bwd | "
        "autograd value_and_grad | F.cross_entropy fwd+bwd |"
    )
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
    for shape in ADAPTER_SHAPES:
        logits, labels = _inputs(shape)
        big = logits.size > 10**8
        scale, unit, repeats = (1e3, "ms", 5) if big else (1e6, "µs", 201)
        row = {
            "plain fwd": partial(nx.sparse_cross_entropy, logits, labels),
            "plain fwd+grad": partial(nx.sparse_cross_entropy_with_grad, logits, labels),
        }
        if torch is not None:
            x = torch.from_numpy(logits)
            x_grad = x.clone().requires_grad_(True)
            y = torch.from_numpy(labels)

            row["torch fwd"] = partial(nx_torch.cross_entropy, x, y)
            row["torch fwd+bwd"] = partial(_backward, nx_torch.cross_entropy, x_grad, y)
            if not big:  # PyTorch's own is a peer, not an overhead figure; at 1 GB it takes seconds
                row["F.cross_entropy fwd+bwd"] = partial(_backward, torch.nn.functional.cross_entropy, x_grad, y)
        if autograd is not None:
            value_and_grad = autograd.value_and_grad(partial(_swap, nx_autograd.sparse_cross_entropy, labels))
            row["autograd fwd"] = partial(nx_autograd.sparse_cross_entropy, logits, labels)
            row["autograd v&g"] = partial(value_and_grad, logits)
        medians = {name: median_seconds(call, repeats) * scale for name, call in row.items()}
        cells = [
            medians.get(name)
            for name in (
                "plain fwd",
                "torch fwd",
                "autograd fwd",
                "plain fwd+grad",
                "torch fwd+bwd",
                "autograd v&g",
                "F.cross_entropy fwd+bwd",
            )
        ]
        text = " | ".join("-" if value is None else f"{value:.3g}" for value in cells)
        print(f"| {shape[0]}x{shape[1]} | {unit} | {text} |")
        del logits
        np.empty(0)


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    if which in ("evaluate", "all"):
        measure_evaluate()
    if which in ("adapters", "all"):
        measure_adapters()
