"""Cross-entropy over logits larger than this machine's memory, on a 2-process dask.distributed LocalCluster.

The logits are generated block by block inside the graph, from a seed and the block's index, and never stored:
a stand-in for reading them from zarr or a model run in chunks. The script reports

- throughput (logits/s): the in-memory function on an array that fits, in this process; the same work as a Dask
  graph (row chunks, and row+class chunks), and the graph that only generates the blocks (the floor);
- the scheduler's cost per chunk: time against the number of chunks at a fixed size, with a least-squares slope;
- the larger-than-memory run: wall time, throughput, peak RSS of each worker process (sampled every 0.1 s with
  psutil), and the Dask task stream (``distributed.performance_report``, opened at its Task Stream tab and
  screenshotted with headless Chromium when ``/usr/bin/chromium`` exists).

Run from the repository root (takes a few minutes at 40 GB on 2 cores):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=$PWD python benchmarks/dask_larger_than_memory.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numba
import numpy as np

import numba_xent

try:
    import dask
    import dask.array as da
    import psutil
    from distributed import Client, LocalCluster, performance_report

    import numba_xent.dask
except ImportError:  # asv imports every module here, also against commits that predate numba_xent.dask
    pass

SEED = 20261127
LOGIT_SCALE = 8.0  # logits uniform in [0, 8): a softmax that is neither flat nor one-hot


def generate_block(block_info=None):
    """The logits of one block, from the seed and the block's position: the same bits wherever it runs."""
    location = block_info[None]["array-location"]
    rows = location[0][1] - location[0][0]
    classes = location[-1][1] - location[-1][0]
    rng = np.random.default_rng([SEED, location[0][0], location[-1][0]])
    block = rng.random((rows, classes), dtype=np.float32)
    block *= LOGIT_SCALE
    return block


def generate_labels(n_classes, block_info=None):
    (start, stop) = block_info[None]["array-location"][0]
    return np.random.default_rng([SEED, start, 2**31]).integers(0, n_classes, stop - start)


def generated_logits(n_rows: int, n_classes: int, chunk_rows: int, chunk_classes: int | None = None):
    chunks = (chunk_rows, chunk_classes or n_classes)
    normalised = da.core.normalize_chunks(chunks, (n_rows, n_classes), dtype=np.float32)
    logits = da.map_blocks(
        generate_block,
        chunks=normalised,
        dtype=np.float32,
        meta=np.empty((0, 0), np.float32),
        name=f"logits-{n_rows}x{n_classes}-{chunks}",
    )
    labels = da.map_blocks(
        generate_labels,
        chunks=(normalised[0],),
        dtype=np.int64,
        meta=np.empty((0,), np.int64),
        n_classes=n_classes,
        name=f"labels-{n_rows}x{n_classes}-{chunk_rows}",
    )
    return logits, labels


def loss_graph(n_rows, n_classes, chunk_rows, chunk_classes=None):
    logits, labels = generated_logits(n_rows, n_classes, chunk_rows, chunk_classes)
    return numba_xent.dask.sparse_cross_entropy(logits, labels)


def first_column(block):
    return block[:, :1]


def floor_graph(n_rows, n_classes, chunk_rows, chunk_classes=None):
    """Generate every block and keep one column of each: the cost of the data and the scheduling, without the loss."""
    logits, _ = generated_logits(n_rows, n_classes, chunk_rows, chunk_classes)
    columns = da.map_blocks(first_column, logits, chunks=(logits.chunks[0], (1,) * len(logits.chunks[1])))
    return columns.sum()


def timed(compute, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        compute()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class RssSampler:
    """Peak resident set size of each worker process, sampled in a background thread."""

    def __init__(self, pids: dict[str, int], interval: float = 0.1):
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak = dict.fromkeys(pids, 0)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for name, process in self.processes.items():
                try:
                    self.peak[name] = max(self.peak[name], process.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
            self._stop.wait(self.interval)

    def __enter__(self):
        self._run_once()
        self._thread.start()
        return self

    def _run_once(self):
        for name, process in self.processes.items():
            self.peak[name] = max(self.peak[name], process.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def screenshot_task_stream(report: Path, image: Path) -> str:
    """Open the performance report at its Task Stream tab in headless Chromium and save a PNG. Returns a note."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        return "no chromium: task stream image not made"
    html = report.read_text()
    # The report is a Bokeh Tabs document; make the Task Stream tab (index 1) the one shown on load.
    html, count = re.subn(r'("name":"Tabs","id":"[^"]+","attributes":\{)', r'\1"active":1,', html, count=1)
    if count != 1:
        return "performance report layout not recognised: task stream image not made"
    tab_file = report.with_name(report.stem + "-task-stream.html")
    tab_file.write_text(html)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1400,620",
        "--virtual-time-budget=15000",
        f"--screenshot={image}",
    ]
    result = subprocess.run(
        [chromium, *flags, tab_file.resolve().as_uri()], capture_output=True, text=True, timeout=300
    )
    tab_file.unlink()
    if result.returncode != 0 or not image.exists():
        return f"chromium failed ({result.returncode}): {result.stderr[-300:]}"
    return f"task stream screenshot: {image}"


def markdown(results: dict) -> str:
    """The README's tables, from the results (pasted, not typed)."""
    memory = results["in_memory"]
    base = memory["logits_per_s"]
    fit_shape = "×".join(map(str, memory["shape"]))
    lines = [
        "| run | shape | chunk shape | s | logits/s | vs in memory |",
        "|---|---|---|--:|--:|--:|",
        f"| in memory, this process, {memory['numba_threads']} Numba threads | {fit_shape} | whole | "
        f"{memory['seconds']:.3f} | {base:.3g} | 1.00 |",
    ]
    for name, run in results["fit_size"].items():
        lines.append(
            f"| {name}, 2 processes × 1 thread | {fit_shape} | {'×'.join(map(str, run['chunks']))} | "
            f"{run['seconds']:.3f} | {run['logits_per_s']:.3g} | {run['logits_per_s'] / base:.2f} |"
        )
    big = results["larger_than_memory"]
    lines.append(
        f"| **{big['gigabytes']:.0f} GB, larger than memory**, 2 processes × 1 thread | "
        f"{'×'.join(map(str, big['shape']))} | {'×'.join(map(str, big['chunk_shape']))} | {big['seconds']:.1f} | "
        f"{big['logits_per_s']:.3g} | {big['logits_per_s'] / base:.2f} |"
    )
    peaks = ", ".join(f"{rss:.2f}" for rss in big["peak_rss_gb_per_worker"].values())
    lines += ["", f"Peak RSS per worker process during the {big['gigabytes']:.0f} GB run: {peaks} GB.", ""]
    overhead = results["overhead"]
    shape = "×".join(map(str, overhead["shape"]))
    for sweep in ("row chunks", "class chunks (8 row chunks)"):
        data = overhead[sweep]
        kinds = list(data["seconds_per_chunk"])
        lines += [
            f"{sweep}, {shape} float32 in total, seconds (median of {overhead['repeats']}):",
            "",
            "| chunks | chunk shape | " + " | ".join(kinds) + " |",
            "|--:|---|" + "--:|" * len(kinds),
        ]
        for point in data["points"]:
            cells = " | ".join(f"{point[kind]:.3f}" for kind in kinds)
            lines.append(f"| {point['chunks']} | {'×'.join(map(str, point['chunk_shape']))} | {cells} |")
        slopes = " | ".join(f"**{data['seconds_per_chunk'][kind] * 1e3:.2f}**" for kind in kinds)
        lines += [f"| ms per chunk (slope) | | {slopes} |", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=40.0, help="size of the float32 logits of the big run")
    parser.add_argument("--classes", type=int, default=32000)
    parser.add_argument("--chunk-rows", type=int, default=2048, help="rows per chunk of the big run")
    parser.add_argument("--fit-rows", type=int, default=4096, help="rows of the in-memory comparison")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/dask"))
    parser.add_argument("--image", type=Path, default=Path("docs/dask-task-stream.png"))
    parser.add_argument("--report", type=Path, default=None, help="keep the performance report HTML here")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    n_classes = args.classes
    results: dict = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "dask": dask.__version__,
        }
    }

    # In memory, this process, all cores (the kernels' own threads).
    fit_rows = args.fit_rows
    logits = np.random.default_rng(SEED).random((fit_rows, n_classes), dtype=np.float32) * LOGIT_SCALE
    labels = np.random.default_rng(SEED + 1).integers(0, n_classes, fit_rows)
    numba_xent.sparse_cross_entropy(logits, labels)
    in_memory = timed(lambda: numba_xent.sparse_cross_entropy(logits, labels), 7)
    generate = timed(lambda: np.random.default_rng(SEED).random((fit_rows, n_classes), dtype=np.float32), 3)
    logits = labels = None  # free the in-memory array before the cluster starts
    fit_logits = fit_rows * n_classes
    results["in_memory"] = {
        "shape": [fit_rows, n_classes],
        "numba_threads": numba.get_num_threads(),
        "seconds": in_memory,
        "logits_per_s": fit_logits / in_memory,
        "generate_seconds_one_thread": generate,
    }
    print(f"in memory {fit_rows}x{n_classes}: {in_memory * 1e3:.1f} ms, {fit_logits / in_memory:.3g} logits/s")

    # One Numba thread per worker process: 2 processes x 1 thread = the 2 cores, no oversubscription.
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",
            env={"NUMBA_NUM_THREADS": "1"},
        ) as cluster,
        Client(cluster) as client,
    ):
        pids = client.run(os.getpid)
        client.compute(loss_graph(256, 512, 64, 128)).result()  # compile (or load from cache) in every worker
        client.compute(loss_graph(256, 512, 64)).result()

        # The same work as the in-memory run, as a graph: row chunks, row+class chunks, and the generation floor.
        chunk_rows = max(1, fit_rows // 8)
        sizes = {
            "dask rows": (loss_graph, None),
            "dask rows+classes": (loss_graph, n_classes // 4),
            "dask generate only": (floor_graph, None),
        }
        results["fit_size"] = {}
        for name, (graph, chunk_classes) in sizes.items():
            seconds = timed(lambda g=graph, c=chunk_classes: g(fit_rows, n_classes, chunk_rows, c).compute(), 3)
            results["fit_size"][name] = {
                "chunks": [chunk_rows, chunk_classes or n_classes],
                "seconds": seconds,
                "logits_per_s": fit_logits / seconds,
            }
            print(
                f"{name} {fit_rows}x{n_classes} chunks ({chunk_rows}, {chunk_classes or n_classes}): "
                f"{seconds * 1e3:.1f} ms, {fit_logits / seconds:.3g} logits/s"
            )

        # Cost per chunk: fixed size, more and more (smaller) chunks; the slope of time against chunks. Beside the
        # loss: the same graph generating the blocks only, a trivial da.ones(...).sum() (Dask's own cost per chunk),
        # and the loss on the threaded scheduler in this process (one Numba thread per Dask thread).
        overhead_rows, overhead_classes = 32768, 2048
        sweeps = {
            "row chunks": [(overhead_rows // n, None) for n in (4, 16, 64, 256)],
            "class chunks (8 row chunks)": [(overhead_rows // 8, overhead_classes // n) for n in (1, 4, 16, 64)],
        }
        results["overhead"] = {"shape": [overhead_rows, overhead_classes], "repeats": args.repeats}
        kinds = {
            "loss": lambda r, c: loss_graph(overhead_rows, overhead_classes, r, c).compute(),
            "generate only": lambda r, c: floor_graph(overhead_rows, overhead_classes, r, c).compute(),
            "da.ones().sum()": lambda r, c: (
                da.ones((overhead_rows, overhead_classes), chunks=(r, c or overhead_classes), dtype=np.float32)
                .sum()
                .compute()
            ),
            "loss, threaded scheduler": lambda r, c: loss_graph(overhead_rows, overhead_classes, r, c).compute(
                scheduler="threads"
            ),
        }
        numba_threads = numba.get_num_threads()
        numba.set_num_threads(1)
        for chunk_classes in (None, 128):  # this process's first calls of both paths, before the timings
            loss_graph(256, 512, 64, chunk_classes).compute(scheduler="threads")
        for sweep, configs in sweeps.items():
            points = []
            for rows, classes in configs:
                n_blocks = (overhead_rows // rows) * (overhead_classes // (classes or overhead_classes))
                point = {"chunks": n_blocks, "chunk_shape": [rows, classes or overhead_classes]}
                for kind, run in kinds.items():
                    point[kind] = timed(lambda run=run, r=rows, c=classes: run(r, c), args.repeats)
                points.append(point)
                print(f"overhead {sweep}: {point}")
            counts = np.array([p["chunks"] for p in points], dtype=float)
            slopes = {kind: float(np.polyfit(counts, [p[kind] for p in points], 1)[0]) for kind in kinds}
            results["overhead"][sweep] = {"points": points, "seconds_per_chunk": slopes}
            print(f"overhead {sweep}: seconds per chunk {slopes}")
        numba.set_num_threads(numba_threads)

        # The larger-than-memory run.
        n_rows = int(args.gigabytes * 1e9 / 4 / n_classes)
        total_logits = n_rows * n_classes
        graph = loss_graph(n_rows, n_classes, args.chunk_rows)
        report = args.report or Path(tempfile.mkdtemp()) / "dask-report.html"
        with RssSampler(pids) as sampler, performance_report(filename=str(report), mode="inline"):
            start = time.perf_counter()
            loss = float(graph.compute())
            seconds = time.perf_counter() - start
        # Check one chunk against the in-memory function on the same generated block.
        first_logits, first_labels = generated_logits(n_rows, n_classes, args.chunk_rows)
        block = first_logits.blocks[0, 0].compute()
        block_labels = first_labels.blocks[0].compute()
        dask_block = float(
            numba_xent.dask.sparse_cross_entropy(first_logits.blocks[0, 0], first_labels.blocks[0]).compute()
        )
        results["larger_than_memory"] = {
            "shape": [n_rows, n_classes],
            "gigabytes": total_logits * 4 / 1e9,
            "chunk_shape": [args.chunk_rows, n_classes],
            "chunk_megabytes": args.chunk_rows * n_classes * 4 / 1e6,
            "n_chunks": int(np.ceil(n_rows / args.chunk_rows)),
            "seconds": seconds,
            "logits_per_s": total_logits / seconds,
            "loss": loss,
            "peak_rss_gb_per_worker": {name: rss / 1e9 for name, rss in sampler.peak.items()},
            "first_chunk_dask_vs_in_memory": [dask_block, float(numba_xent.sparse_cross_entropy(block, block_labels))],
        }
        print(
            f"larger than memory: {total_logits * 4 / 1e9:.1f} GB float32 ({n_rows}x{n_classes}) in {seconds:.1f} s, "
            f"{total_logits / seconds:.3g} logits/s, loss {loss:.6f}; peak RSS per worker (GB): "
            + ", ".join(f"{rss / 1e9:.2f}" for rss in sampler.peak.values())
        )
    results["task_stream"] = screenshot_task_stream(report, args.image)
    print(results["task_stream"])
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (args.out / "tables.md").write_text(table + "\n")
    print(table)
    print(f"results: {args.out / 'results.json'}, {args.out / 'tables.md'}")


if __name__ == "__main__":
    sys.exit(main())
