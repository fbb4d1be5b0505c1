"""numba_xent.dask on a real two-process dask.distributed LocalCluster and on the threaded scheduler: every row and
class chunking against the in-memory functions on the same data (and the float64 reference), errors before the
graph runs, bad labels named by their global position at compute time, and evaluate() against an argsort reference.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import references as ref
from helpers import assert_close, rel_atol

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import numba_xent as nx  # noqa: E402
import numba_xent.dask as nxd  # noqa: E402

RTOL = {np.float64: 1e-12, np.float32: 2e-5}
REDUCTIONS = ("mean", "sum", "none")

# (logits shape, chunks): one block, row chunks, class chunks, both, uneven; and (batch, seq, classes) batches.
CHUNKINGS = {
    "single block": ((13, 11), (13, 11)),
    "row chunks": ((13, 11), (5, 11)),
    "class chunks": ((13, 11), (13, 4)),
    "rows and classes": ((13, 11), (4, 3)),
    "uneven": ((13, 11), ((2, 7, 4), (1, 6, 4))),
    "3-D rows": ((3, 5, 11), ((2, 1), (3, 2), (11,))),
    "3-D rows and classes": ((3, 5, 11), ((1, 2), (5,), (4, 7))),
}


@pytest.fixture(scope="module")
def cluster_client():
    """Two worker processes, one thread each; closed (workers, nanny processes, client) when the module ends."""
    # dashboard_address=":0": a free port, so a dashboard another process holds on :8787 raises no warning.
    # One Numba thread per worker process: the two processes already fill the two cores (as the README advises).
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            env={"NUMBA_NUM_THREADS": "1"},
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client


@pytest.fixture(params=["distributed", "threads"])
def scheduler(request):
    """Run the test's dask.compute calls on the cluster or the threaded scheduler."""
    target = request.getfixturevalue("cluster_client") if request.param == "distributed" else "threads"
    with dask.config.set(scheduler=target):
        yield request.param


def make_case(rng, shape, dtype, with_options):
    logits = (3.0 * rng.standard_normal(shape)).astype(dtype)
    n_classes = shape[-1]
    labels = rng.integers(0, n_classes, shape[:-1])
    options = {}
    if with_options:
        labels = np.where(rng.random(labels.shape) < 0.3, -100, labels)
        options = dict(
            class_weight=rng.random(n_classes) + 0.1,
            sample_weight=rng.random(labels.shape),
            label_smoothing=0.2,
            z_loss=0.01,
        )
    return logits, labels, options


def check(actual, expected, rtol):
    assert_close(actual, expected, rtol=rtol, atol=rel_atol(expected, rtol / 10) + 1e-300)


@pytest.mark.parametrize("with_options", [False, True], ids=["plain", "ignore+weights+smoothing+z"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_matches_in_memory(rng, scheduler, chunking, dtype, with_options):
    shape, chunks = CHUNKINGS[chunking]
    logits, labels, options = make_case(rng, shape, dtype, with_options)
    chunked = da.from_array(logits, chunks=chunks)
    # Labels and sample weights arrive chunked differently from the logits' rows: they are rechunked to match.
    labels_chunked = da.from_array(labels, chunks=2)
    if "sample_weight" in options:
        options["sample_weight"] = da.from_array(options["sample_weight"], chunks=3)
    in_memory_options = {k: np.asarray(v) if k == "sample_weight" else v for k, v in options.items()}
    upstream = rng.standard_normal(labels.shape)

    lazy = []
    for reduction in REDUCTIONS:
        lazy.append(nxd.sparse_cross_entropy(chunked, labels_chunked, reduction=reduction, **options))
        grad_output = da.from_array(upstream, chunks=4) if reduction == "none" else 0.7
        lazy.append(
            nxd.sparse_cross_entropy_grad(
                chunked, labels_chunked, reduction=reduction, grad_output=grad_output, **options
            )
        )
    assert all(isinstance(result, da.Array) for result in lazy)
    computed = dask.compute(*lazy)

    rtol = RTOL[dtype]
    out_dtype = np.float64 if dtype == np.float64 else np.float32
    for i, reduction in enumerate(REDUCTIONS):
        loss, grad = computed[2 * i], computed[2 * i + 1]
        expected = nx.sparse_cross_entropy(logits, labels, reduction=reduction, **in_memory_options)
        assert np.asarray(loss).dtype == out_dtype
        check(loss, expected, rtol)
        check(loss, ref.sparse_cross_entropy(logits, labels, reduction=reduction, **in_memory_options), rtol * 10)
        grad_output = upstream if reduction == "none" else 0.7
        expected_grad = nx.sparse_cross_entropy_grad(
            logits, labels, reduction=reduction, grad_output=grad_output, **in_memory_options
        )
        assert grad.dtype == dtype
        check(grad, expected_grad, rtol)
    assert lazy[0].ndim == 0 and lazy[2].ndim == 0
    assert lazy[4].chunks == labels_chunked.chunks  # "none": chunked like the labels
    assert lazy[1].chunks == chunked.chunks  # gradients: chunked like the logits


@pytest.mark.parametrize("chunks", [(4, 9, 3), (4, 4, 3)], ids=["rows", "rows and classes"])
def test_class_axis_not_last(rng, scheduler, chunks):
    logits = rng.standard_normal((6, 9, 5))  # (batch, classes, seq): PyTorch's layout
    labels = rng.integers(0, 9, (6, 5))
    options = dict(axis=1, label_smoothing=0.1, class_weight=rng.random(9))
    chunked = da.from_array(logits, chunks=chunks)
    loss, losses, grad = dask.compute(
        nxd.sparse_cross_entropy(chunked, labels, **options),
        nxd.sparse_cross_entropy(chunked, labels, reduction="none", **options),
        nxd.sparse_cross_entropy_grad(chunked, labels, **options),
    )
    check(loss, nx.sparse_cross_entropy(logits, labels, **options), 1e-12)
    check(losses, nx.sparse_cross_entropy(logits, labels, reduction="none", **options), 1e-12)
    check(grad, nx.sparse_cross_entropy_grad(logits, labels, **options), 1e-12)
    assert grad.shape == logits.shape


@pytest.mark.parametrize("chunks", [(4, 6), (4, 2)], ids=["rows", "rows and classes"])
def test_all_rows_ignored(rng, scheduler, chunks):
    logits = da.from_array(rng.standard_normal((8, 6)), chunks=chunks)
    labels = np.full(8, -100)
    loss, grad = dask.compute(nxd.sparse_cross_entropy(logits, labels), nxd.sparse_cross_entropy_grad(logits, labels))
    assert loss == 0.0
    assert not grad.any()


@pytest.mark.parametrize("chunks", [(5, 9), (5, 4)], ids=["rows", "rows and classes"])
def test_float16_computed_in_float32(rng, chunks):
    logits = (3 * rng.standard_normal((9, 9))).astype(np.float16)
    labels = rng.integers(0, 9, 9)
    options = dict(label_smoothing=0.1, reduction="none")
    chunked = da.from_array(logits, chunks=chunks)
    loss, grad = dask.compute(
        nxd.sparse_cross_entropy(chunked, labels, **options),
        nxd.sparse_cross_entropy_grad(chunked, labels, grad_output=2.0, **options),
        scheduler="sync",
    )
    assert loss.dtype == np.float32 and grad.dtype == np.float16
    check(loss, nx.sparse_cross_entropy(logits, labels, **options), 2e-5)
    expected = nx.sparse_cross_entropy_grad(logits, labels, grad_output=2.0, **options)
    np.testing.assert_allclose(grad.astype(np.float64), expected.astype(np.float64), rtol=1e-3, atol=1e-4)


def test_numpy_inputs_are_wrapped(rng):
    logits, labels = rng.standard_normal((7, 5)), rng.integers(0, 5, 7)
    result = nxd.sparse_cross_entropy(logits, labels, z_loss=0.1)
    assert isinstance(result, da.Array)
    check(result.compute(scheduler="sync"), nx.sparse_cross_entropy(logits, labels, z_loss=0.1), 1e-12)


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "shape, chunks, bad_position",
    [
        ((12, 7), (5, 7), (8,)),
        ((12, 7), (5, 3), (11,)),
        ((3, 4, 7), (2, 3, 7), (2, 3)),
        ((3, 4, 7), (2, 3, 4), (1, 3)),
    ],
    ids=["rows", "rows and classes", "3-D rows", "3-D rows and classes"],
)
@pytest.mark.parametrize("what", ["loss", "grad", "evaluate"])
def test_bad_label_named_by_global_position(rng, scheduler, shape, chunks, bad_position, what):
    logits = rng.standard_normal(shape)
    labels = rng.integers(0, shape[-1], shape[:-1])
    labels[bad_position] = 42
    with pytest.raises(ValueError) as in_memory:
        nx.sparse_cross_entropy(logits, labels)
    chunked = da.from_array(logits, chunks=chunks)
    expected = f"label 42 at index {bad_position} is outside [0, 7) and is not ignore_index (-100)"
    assert str(in_memory.value) == expected
    with pytest.raises(ValueError) as raised:
        if what == "evaluate":
            nxd.evaluate(chunked, labels)
        else:
            function = nxd.sparse_cross_entropy if what == "loss" else nxd.sparse_cross_entropy_grad
            dask.compute(function(chunked, labels))
    assert str(raised.value) == expected


def test_negative_sample_weight_named_by_global_position(rng, scheduler):
    logits = da.from_array(rng.standard_normal((10, 4)), chunks=(3, 4))
    weight = np.ones(10)
    weight[7] = -0.5
    with pytest.raises(ValueError, match=r"sample_weight must be non-negative, got -0.5 at index \(7,\)"):
        dask.compute(nxd.sparse_cross_entropy(logits, rng.integers(0, 4, 10), sample_weight=weight))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda x, y: nxd.sparse_cross_entropy(x, y[:-1]), ValueError, r"labels have shape \(7,\)"),
        (lambda x, y: nxd.sparse_cross_entropy(x, y.astype(float)), TypeError, "integers"),
        (lambda x, y: nxd.sparse_cross_entropy(x.astype(int), y), TypeError, "float16, float32 or float64"),
        (lambda x, y: nxd.sparse_cross_entropy(x, y, reduction="avg"), ValueError, "reduction"),
        (lambda x, y: nxd.sparse_cross_entropy(x, y, class_weight=np.ones(3)), ValueError, "class_weight has"),
        (lambda x, y: nxd.sparse_cross_entropy(x, y, label_smoothing=-1), ValueError, "label_smoothing"),
        (lambda x, y: nxd.sparse_cross_entropy(x, y, axis=2), ValueError, "out of bounds"),
        (lambda x, y: nxd.sparse_cross_entropy(x, y, sample_weight=np.ones(3)), ValueError, "sample_weight has"),
        (lambda x, y: nxd.sparse_cross_entropy(x[x[:, 0] > 0], y), ValueError, "unknown chunk sizes"),
        (lambda x, y: nxd.sparse_cross_entropy_grad(x, y, grad_output=np.ones(8)), ValueError, "must be a scalar"),
        (
            lambda x, y: nxd.sparse_cross_entropy_grad(x, y, reduction="none", grad_output=np.ones(5)),
            ValueError,
            "grad_output has shape",
        ),
        (lambda x, y: nxd.evaluate(x, y, top_k=0), ValueError, "top_k"),
    ],
)
def test_bad_input_raises_before_the_graph_runs(rng, call, error, match):
    def must_not_run(block):
        raise AssertionError("the graph ran")

    # Any computation would hit must_not_run: the error has to come from building the graph.
    logits = da.from_array(rng.standard_normal((8, 6)), chunks=(3, 4)).map_blocks(must_not_run, dtype=np.float64)
    with pytest.raises(error, match=match):
        call(logits, np.zeros(8, int))


# ------------------------------------------------------------------------------------------------ evaluate


def reference_evaluation(logits, labels, top_k, class_weight=None, ignore_index=-100):
    """Independent: the loss from the float64 reference, ranks from a descending sort of each row."""
    kept = labels != ignore_index
    rows = logits.reshape(-1, logits.shape[-1]).astype(np.float64)[kept.reshape(-1)]
    label_logits = np.take_along_axis(rows, labels.reshape(-1)[kept.reshape(-1)][:, None], axis=1)[:, 0]
    descending = -np.sort(rows, axis=1)[:, ::-1]
    greater = np.array([np.searchsorted(d, -v, side="left") for d, v in zip(descending, label_logits, strict=True)])
    loss = ref.sparse_cross_entropy(logits, labels, class_weight=class_weight, ignore_index=ignore_index)
    accuracy = {k: float(np.mean(greater < k)) if greater.size else 0.0 for k in top_k}
    return float(loss), int(kept.sum()), accuracy


@pytest.mark.parametrize("chunks", [(5, 20), (5, 6), ((9, 4), (2, 15, 3))], ids=["rows", "both", "uneven"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_evaluate_matches_argsort_reference(rng, scheduler, chunks, dtype):
    logits = np.round(2 * rng.standard_normal((13, 20))).astype(dtype)  # rounded: many ties
    labels = np.where(rng.random(13) < 0.2, -100, rng.integers(0, 20, 13))
    class_weight = rng.random(20) + 0.5
    result = nxd.evaluate(da.from_array(logits, chunks=chunks), labels, top_k=(1, 3, 20), class_weight=class_weight)
    loss, n_kept, accuracy = reference_evaluation(logits, labels, (1, 3, 20), class_weight)
    assert result.n_kept == n_kept
    assert result.top_k_accuracy == pytest.approx(accuracy, abs=1e-15)
    assert result.top_k_accuracy[20] == 1.0
    assert result.loss == pytest.approx(loss, rel=RTOL[dtype] * 10)
    assert result.perplexity == pytest.approx(np.exp(loss), rel=RTOL[dtype] * 10)


def test_evaluate_all_ignored(rng):
    result = nxd.evaluate(da.from_array(rng.standard_normal((4, 5)), chunks=(2, 2)), np.full(4, -100), top_k=2)
    assert (result.loss, result.n_kept, result.top_k_accuracy, result.perplexity) == (0.0, 0, {2: 0.0}, 1.0)


def test_import_numba_xent_does_not_import_dask():
    code = "import sys, numba_xent; assert 'dask' not in sys.modules, 'dask imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_readme_dask_examples():
    """The ```pycon blocks of the README's Dask section (test_readme.py runs only ```python blocks, which must not
    need Dask)."""
    import doctest
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Scaling out with Dask") :]
    blocks = re.findall(r"^```pycon\n(.*?)^```", section, re.DOTALL | re.MULTILINE)
    assert blocks
    namespace = {"np": np, "nx": nx}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for index, source in enumerate(blocks):
        test = doctest.DocTestParser().get_doctest(source, namespace, f"README dask block {index}", "README.md", 0)
        runner.run(test, clear_globs=False)
        namespace.update(test.globs)
    assert runner.failures == 0
