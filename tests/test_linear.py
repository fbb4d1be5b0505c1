"""linear_cross_entropy(_with_grad) against PyTorch's reference path (F.linear + F.cross_entropy, autograd), a
float64 NumPy reference with finite differences, and its own loss-only call; bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import references as ref
from helpers import assert_close, rel_atol

import numba_xent as nx
from numba_xent import linear

N_FEATURES = 6
N_CLASSES = 13

# Keywords of linear_cross_entropy; "ignore" marks 30% of labels ignore_index (the first one always),
# class_weight=True / bias=True are materialised with random data, grad_output="rows" with one value per row.
CASES = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"reduction": "none", "grad_output": "rows"},
    {"grad_output": 2.5},
    {"ignore": True},
    {"ignore": True, "ignore_index": 3},
    {"class_weight": True},
    {"ignore": True, "class_weight": True, "label_smoothing": 0.2},
    {"label_smoothing": 1.0, "reduction": "sum"},
    {"z_loss": 0.01},
    {"ignore": True, "class_weight": True, "z_loss": 0.05},
    {"softcap": 2.0},
    {"softcap": 2.0, "ignore": True, "class_weight": True, "reduction": "none", "grad_output": "rows"},
    {"bias": True},
    {
        "bias": True,
        "ignore": True,
        "class_weight": True,
        "label_smoothing": 0.1,
        "z_loss": 0.02,
        "softcap": 3.0,
        "reduction": "mean",
        "grad_output": -1.5,
    },
    {"bias": True, "ignore": True, "class_weight": True, "softcap": 5.0, "reduction": "none", "grad_output": "rows"},
]


def case_id(case):
    return "-".join(f"{k}={v}" for k, v in case.items()) or "default"


def make_case(rng, case, batch_shape, dtype):
    """(hidden, weight, labels, keywords, grad_output) for one entry of CASES."""
    case = dict(case)
    hidden = (1.5 * rng.standard_normal(batch_shape + (N_FEATURES,))).astype(dtype)
    weight = rng.standard_normal((N_CLASSES, N_FEATURES)).astype(dtype)
    labels = rng.integers(0, N_CLASSES, size=batch_shape)
    if case.pop("ignore", False):
        ignore_index = case.get("ignore_index", -100)
        labels = np.where(rng.random(batch_shape) < 0.3, ignore_index, labels)
        labels.flat[0] = ignore_index
    if case.get("class_weight") is True:
        case["class_weight"] = rng.uniform(0.2, 2.0, N_CLASSES)
    if case.get("bias") is True:
        case["bias"] = rng.standard_normal(N_CLASSES).astype(dtype)
    grad_output = case.pop("grad_output", 1.0)
    if isinstance(grad_output, str):
        grad_output = rng.uniform(-2.0, 2.0, batch_shape)
    return hidden, weight, labels, case, grad_output


def numpy_loss(hidden, weight, labels, *, bias=None, softcap=None, **options):
    """The float64 reference: logits the obvious way, then references.sparse_cross_entropy."""
    logits = np.asarray(hidden, np.float64) @ np.asarray(weight, np.float64).T
    if bias is not None:
        logits = logits + np.asarray(bias, np.float64)
    if softcap is not None:
        logits = softcap * np.tanh(logits / softcap)
    return ref.sparse_cross_entropy(logits, labels, **options)


def torch_reference(hidden, weight, labels, grad_output, *, bias=None, class_weight=None, ignore_index=-100,
                    reduction="mean", label_smoothing=0.0, z_loss=0.0, softcap=None):  # fmt: skip
    """PyTorch's reference path in float64: F.linear, the cap and z-loss written out, F.cross_entropy, autograd."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    h = torch.tensor(np.asarray(hidden, np.float64), requires_grad=True)
    w = torch.tensor(np.asarray(weight, np.float64), requires_grad=True)
    b = None if bias is None else torch.tensor(np.asarray(bias, np.float64), requires_grad=True)
    logits = F.linear(h, w, b)
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    flat = logits.reshape(-1, N_CLASSES)
    target = torch.tensor(np.asarray(labels, np.int64).reshape(-1))
    cw = None if class_weight is None else torch.tensor(np.asarray(class_weight, np.float64))
    if not z_loss and reduction != "none":
        loss = F.cross_entropy(flat, target, weight=cw, ignore_index=ignore_index, reduction=reduction,
                               label_smoothing=label_smoothing)  # fmt: skip
    else:
        per_row = F.cross_entropy(flat, target, weight=cw, ignore_index=ignore_index, reduction="none",
                                  label_smoothing=label_smoothing)  # fmt: skip
        kept = target != ignore_index
        safe = torch.where(kept, target, torch.zeros_like(target))
        w_y = (torch.ones(target.shape, dtype=torch.float64) if cw is None else cw[safe]) * kept
        per_row = per_row + z_loss * w_y * torch.logsumexp(flat, dim=1) ** 2
        if reduction == "none":
            loss = per_row.reshape(labels.shape)
        elif reduction == "sum":
            loss = per_row.sum()
        else:
            loss = per_row.sum() / w_y.sum()
    if reduction == "none":
        loss.backward(torch.tensor(np.broadcast_to(np.asarray(grad_output, np.float64), labels.shape).copy()))
    else:
        (loss * float(grad_output)).backward()
    grads = [h.grad.numpy(), w.grad.numpy(), None if b is None else b.grad.numpy()]
    return [loss.detach().numpy()] + grads


def check_against(expected, actual, dtype):
    rtol = 2e-4 if dtype == np.float32 else 1e-10
    names = ("loss", "grad_hidden", "grad_weight", "grad_bias")
    for name, want, got in zip(names, expected, actual, strict=True):
        if want is None:
            assert got is None, name
            continue
        assert np.asarray(got).dtype == dtype, name
        assert_close(got, want, rtol=rtol, atol=rel_atol(want, rtol), err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunk_size", [None, 4])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_torch_reference_path(rng, case, chunk_size, dtype):
    # 2 x 9 rows: chunks of 4 leave a partial last chunk, and ignored rows make some chunks non-consecutive.
    hidden, weight, labels, options, grad_output = make_case(rng, case, (2, 9), dtype)
    expected = torch_reference(hidden, weight, labels, grad_output, **options)
    actual = nx.linear_cross_entropy_with_grad(
        hidden, weight, labels, chunk_size=chunk_size, grad_output=grad_output, **options
    )
    check_against(expected, actual, dtype)
    assert actual[2].T.flags.c_contiguous  # grad_weight in Fortran order, as documented
    loss_only = nx.linear_cross_entropy(hidden, weight, labels, chunk_size=chunk_size, **options)
    assert_close(loss_only, actual[0], rtol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_float64_numpy_reference_and_finite_differences(rng, case):
    hidden, weight, labels, options, grad_output = make_case(rng, case, (7,), np.float64)
    loss, grad_hidden, grad_weight, grad_bias = nx.linear_cross_entropy_with_grad(
        hidden, weight, labels, chunk_size=3, grad_output=grad_output, **options
    )
    assert_close(loss, numpy_loss(hidden, weight, labels, **options), rtol=1e-12, atol=1e-12)
    weights = np.asarray(grad_output, np.float64)

    def objective(**changed):
        arguments = {"hidden": hidden, "weight": weight, **options, **changed}
        return float(np.sum(weights * numpy_loss(labels=labels, **arguments)))

    numeric = ref.numeric_grad(lambda h: objective(hidden=h), hidden)
    assert_close(grad_hidden, numeric, rtol=1e-6, atol=1e-8)
    assert np.all(grad_hidden[labels == options.get("ignore_index", -100)] == 0.0)
    assert_close(grad_weight, ref.numeric_grad(lambda w: objective(weight=w), weight), rtol=1e-6, atol=1e-8)
    if "bias" in options:
        numeric_bias = ref.numeric_grad(lambda b: objective(bias=b), options["bias"])
        assert_close(grad_bias, numeric_bias, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_ignored_gives_zero_loss_and_zero_grads(rng, reduction, dtype):
    hidden = rng.standard_normal((2, 3, N_FEATURES)).astype(dtype)
    weight = rng.standard_normal((N_CLASSES, N_FEATURES)).astype(dtype)
    bias = rng.standard_normal(N_CLASSES).astype(dtype)
    labels = np.full((2, 3), -100)
    loss, grad_hidden, grad_weight, grad_bias = nx.linear_cross_entropy_with_grad(
        hidden, weight, labels, bias=bias, reduction=reduction, class_weight=np.ones(N_CLASSES)
    )
    assert np.all(np.asarray(loss) == 0.0) and np.asarray(loss).shape == ((2, 3) if reduction == "none" else ())
    for grad, like in ((grad_hidden, hidden), (grad_weight, weight), (grad_bias, bias)):
        assert grad.shape == like.shape and grad.dtype == dtype and not grad.any()
    assert np.all(np.asarray(nx.linear_cross_entropy(hidden, weight, labels, reduction=reduction)) == 0.0)


def test_empty_batch(rng):
    weight = rng.standard_normal((N_CLASSES, N_FEATURES))
    loss, grad_hidden, grad_weight, _ = nx.linear_cross_entropy_with_grad(
        np.zeros((0, N_FEATURES)), weight, np.zeros(0, np.int64)
    )
    assert loss == 0.0 and grad_hidden.shape == (0, N_FEATURES) and not grad_weight.any()


def test_single_row_hidden_and_scalar_label(rng):
    hidden = rng.standard_normal(N_FEATURES)
    weight = rng.standard_normal((N_CLASSES, N_FEATURES))
    loss, grad_hidden, _, _ = nx.linear_cross_entropy_with_grad(hidden, weight, np.array(4))
    assert_close(loss, numpy_loss(hidden[None], weight, np.array([4])), rtol=1e-12)
    assert grad_hidden.shape == (N_FEATURES,)


@pytest.mark.parametrize("chunk_size", [1, 5, 64])
def test_chunk_size_changes_nothing_but_rounding(rng, chunk_size):
    hidden, weight, labels, options, grad_output = make_case(rng, CASES[-1], (3, 7), np.float64)
    whole = nx.linear_cross_entropy_with_grad(hidden, weight, labels, grad_output=grad_output, **options)
    chunked = nx.linear_cross_entropy_with_grad(
        hidden, weight, labels, grad_output=grad_output, chunk_size=chunk_size, **options
    )
    for a, b in zip(whole, chunked, strict=True):
        assert_close(a, b, rtol=1e-13, atol=rel_atol(a, 1e-13))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_only_fallback_for_grad_weight(rng, monkeypatch, dtype):
    hidden, weight, labels, options, grad_output = make_case(rng, CASES[-2], (4, 5), dtype)
    with_scipy = nx.linear_cross_entropy_with_grad(hidden, weight, labels, chunk_size=3, **options)
    monkeypatch.setattr(linear, "_scipy_blas", None)
    monkeypatch.setattr(linear, "_FALLBACK_SCRATCH_BYTES", 5 * N_FEATURES * np.dtype(dtype).itemsize)  # 5-row tiles
    numpy_only = nx.linear_cross_entropy_with_grad(hidden, weight, labels, chunk_size=3, **options)
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    for a, b in zip(with_scipy, numpy_only, strict=True):
        if a is not None:
            assert_close(b, a, rtol=rtol, atol=rel_atol(a, rtol))


def test_default_chunk_respects_the_budget(rng, monkeypatch):
    monkeypatch.setattr(linear, "LOGITS_BUDGET_BYTES", 40 * N_CLASSES * 8)  # 40 float64 rows
    hidden, weight, labels, options, _ = make_case(rng, {"softcap": 4.0}, (100,), np.float64)
    problem = linear._prepare(hidden, weight, labels, None, None, -100, "mean", 0.0, 0.0, 4.0, None)
    assert problem.rows_per_chunk(buffers=1) == 40 and problem.rows_per_chunk(buffers=2) == 24  # 30 -> 8s
    expected = nx.linear_cross_entropy_with_grad(hidden, weight, labels, chunk_size=100, **options)
    for a, b in zip(expected, nx.linear_cross_entropy_with_grad(hidden, weight, labels, **options), strict=True):
        if a is not None:
            assert_close(b, a, rtol=1e-13, atol=rel_atol(a, 1e-13))


def test_strided_and_fortran_inputs(rng):
    hidden = np.asfortranarray(rng.standard_normal((9, N_FEATURES)))
    weight = rng.standard_normal((N_FEATURES, N_CLASSES)).T  # Fortran-ordered (classes, features)
    labels = rng.integers(0, N_CLASSES, 18)[::2]
    expected = nx.linear_cross_entropy_with_grad(np.ascontiguousarray(hidden), np.ascontiguousarray(weight), labels)
    for a, b in zip(expected, nx.linear_cross_entropy_with_grad(hidden, weight, labels, chunk_size=4), strict=True):
        if a is not None:
            assert_close(b, a, rtol=1e-13, atol=rel_atol(a, 1e-13))


# ------------------------------------------------------------------------------------------------ bad input


def _inputs(rng, batch_shape=(2, 3), dtype=np.float32):
    hidden = rng.standard_normal(batch_shape + (N_FEATURES,)).astype(dtype)
    weight = rng.standard_normal((5, N_FEATURES)).astype(dtype)
    labels = rng.integers(0, 5, batch_shape)
    return hidden, weight, labels


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if any product or kernel starts: errors must come before any work."""

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the input was validated")

    monkeypatch.setattr(linear, "_logits_into", forbidden)
    monkeypatch.setattr(linear, "sparse_cross_entropy_with_grad", forbidden)
    monkeypatch.setattr(linear, "sparse_cross_entropy", forbidden)


def test_out_of_range_label_names_value_and_index(rng, no_work):
    hidden, weight, labels = _inputs(rng)
    labels[1, 2] = 7
    message = r"label 7 at index \(1, 2\) is outside \[0, 5\) and is not ignore_index \(-100\)"
    with pytest.raises(ValueError, match=message):
        nx.linear_cross_entropy_with_grad(hidden, weight, labels)
    with pytest.raises(ValueError, match=message):
        nx.linear_cross_entropy(hidden, weight, labels)
    labels[1, 2] = 0
    labels[0, 1] = -1
    with pytest.raises(ValueError, match=r"label -1 at index \(0, 1\) is outside \[0, 5\) .* ignore_index \(-100\)"):
        nx.linear_cross_entropy(hidden, weight, labels)
    with pytest.raises(ValueError, match=r"label -100 at index \(0, 0\) .* ignore_index \(3\)"):
        nx.linear_cross_entropy(hidden, weight, np.full((2, 3), -100), ignore_index=3)
    huge = np.zeros((2, 3), np.uint64)
    huge[0, 2] = np.iinfo(np.uint64).max
    with pytest.raises(ValueError, match=r"label 18446744073709551615 at index \(0, 2\)"):
        nx.linear_cross_entropy(hidden, weight, huge)


@pytest.mark.parametrize(
    "change, error, message",
    [
        (lambda h, w, y: (h.astype(np.int32), w, y), TypeError, "hidden must be a float32 or float64"),
        (lambda h, w, y: (h.astype(np.float16), w, y), TypeError, "hidden must be a float32 or float64"),
        (lambda h, w, y: (h, w.astype(np.float64), y), TypeError, "weight has dtype float64 but hidden has"),
        (lambda h, w, y: (h, w[0], y), ValueError, r"weight must be 2-D \(classes, features\)"),
        (lambda h, w, y: (h, w[:, :4], y), ValueError, "hidden has 6 features .* but weight of shape"),
        (lambda h, w, y: (h, w[:0], y), ValueError, "no classes or no features"),
        (lambda h, w, y: (h[..., :0], w[:, :0], y), ValueError, "no classes or no features"),
        (lambda h, w, y: (h[0, 0, 0], w, y), ValueError, "at least one dimension"),
        (lambda h, w, y: (h, w, y[0]), ValueError, r"labels have shape \(3,\) but hidden of shape"),
        (lambda h, w, y: (h, w, y.astype(np.float64)), TypeError, "labels must be an array of integers"),
    ],
)
def test_bad_arrays(rng, no_work, change, error, message):
    hidden, weight, labels = change(*_inputs(rng))
    with pytest.raises(error, match=message):
        nx.linear_cross_entropy_with_grad(hidden, weight, labels)


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"bias": np.zeros(4, np.float32)}, ValueError, r"bias has shape \(4,\) but weight of shape"),
        ({"bias": np.zeros(5)}, TypeError, "bias has dtype float64 but hidden has dtype float32"),
        ({"class_weight": np.ones(4)}, ValueError, r"class_weight has shape \(4,\) but there are 5 classes"),
        ({"class_weight": np.array([1, 1, -2, 1, 1.0])}, ValueError, r"non-negative, got -2.0 at index \(2,\)"),
        ({"class_weight": np.array(["a"] * 5)}, TypeError, "class_weight must be a real array"),
        ({"reduction": "avg"}, ValueError, "reduction must be one of"),
        ({"label_smoothing": 1.5}, ValueError, r"label_smoothing must be a number in \[0, 1\]"),
        ({"z_loss": -1.0}, ValueError, "z_loss must be a finite number >= 0"),
        ({"softcap": 0.0}, ValueError, "softcap must be None or a finite number > 0"),
        ({"softcap": float("inf")}, ValueError, "softcap must be None or a finite number > 0"),
        ({"softcap": "30"}, TypeError, "softcap must be None or a number"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be None or an integer >= 1"),
        ({"chunk_size": 2.5}, ValueError, "chunk_size must be None or an integer >= 1"),
        ({"ignore_index": 1.5}, TypeError, "ignore_index must be an integer"),
        ({"grad_output": np.ones((2, 3))}, ValueError, "grad_output must be a scalar for reduction='mean'"),
        ({"grad_output": np.ones(6), "reduction": "none"}, ValueError, r"grad_output has shape \(6,\) but the"),
        ({"grad_output": "1"}, TypeError, "grad_output must be real"),
    ],
)
def test_bad_options(rng, no_work, options, error, message):
    hidden, weight, labels = _inputs(rng)
    with pytest.raises(error, match=message):
        nx.linear_cross_entropy_with_grad(hidden, weight, labels, **options)
    if "grad_output" not in options:
        with pytest.raises(error, match=message):
            nx.linear_cross_entropy(hidden, weight, labels, **options)
