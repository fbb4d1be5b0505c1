"""numba_xent.autograd: autograd.grad through a small model written in autograd.numpy, against autograd's own
differentiation of the same model with the loss written in autograd.numpy."""

from __future__ import annotations

import numpy as np
import pytest

autograd = pytest.importorskip("autograd")
anp = pytest.importorskip("autograd.numpy")
nx_autograd = pytest.importorskip("numba_xent.autograd")


def _plain_loss(logits, labels, class_weight=None, reduction="mean", label_smoothing=0.0, ignore_index=-100):
    """PyTorch's cross-entropy in autograd.numpy, the obvious way: autograd differentiates this itself."""
    n_rows, n_classes = logits.shape
    shifted = logits - anp.max(logits, axis=1, keepdims=True)
    log_probs = shifted - anp.log(anp.sum(anp.exp(shifted), axis=1, keepdims=True))
    kept = labels != ignore_index
    safe = np.where(kept, labels, 0)
    weights = np.ones(n_classes) if class_weight is None else np.asarray(class_weight, dtype=float)
    label_weight = weights[safe] * kept
    nll = -log_probs[np.arange(n_rows), safe]
    smooth = -anp.sum(log_probs * weights, axis=1) / n_classes
    per_row = label_weight * (1.0 - label_smoothing) * nll + kept * label_smoothing * smooth
    if reduction == "none":
        return per_row
    if reduction == "sum":
        return anp.sum(per_row)
    return anp.sum(per_row) / np.sum(label_weight)


def _model(params, features):
    hidden = anp.tanh(anp.dot(features, params["w1"]) + params["b1"])
    return anp.dot(hidden, params["w2"]) + params["b2"]


OPTIONS = [
    {},
    {"reduction": "sum"},
    {"class_weight": [1.0, 0.5, 2.0, 1.0], "label_smoothing": 0.1},
    {"ignore_index": 3, "reduction": "mean"},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "default")
def test_grad_through_a_model_matches_autograds_own(rng, options):
    features = rng.standard_normal((12, 6))
    labels = rng.integers(0, 4, 12)
    params = {
        "w1": rng.standard_normal((6, 8)),
        "b1": rng.standard_normal(8),
        "w2": rng.standard_normal((8, 4)),
        "b2": rng.standard_normal(4),
    }

    def ours(params):
        return nx_autograd.sparse_cross_entropy(_model(params, features), labels, **options)

    def plain(params):
        return _plain_loss(_model(params, features), labels, **options)

    assert ours(params) == pytest.approx(plain(params), rel=1e-12)
    ours_grad, plain_grad = autograd.grad(ours)(params), autograd.grad(plain)(params)
    for name in params:
        np.testing.assert_allclose(ours_grad[name], plain_grad[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_reduction_none_vjp_takes_per_row_cotangents(rng):
    logits = rng.standard_normal((5, 3))
    labels = np.array([0, 2, 1, 1, 0])
    row_scale = rng.standard_normal(5)

    def ours(z):
        return anp.sum(nx_autograd.sparse_cross_entropy(z, labels, reduction="none") ** 2 * row_scale)

    def plain(z):
        return anp.sum(_plain_loss(z, labels, reduction="none") ** 2 * row_scale)

    np.testing.assert_allclose(autograd.grad(ours)(logits), autograd.grad(plain)(logits), rtol=1e-10, atol=1e-12)


def test_gradient_comes_from_one_fused_call(rng, monkeypatch):
    """Traced by autograd, the loss and its gradient come from one sparse_cross_entropy_with_grad call, and the
    vjp scales that gradient (autograd traces no formula of its own)."""
    import numba_xent.sparse

    calls = []
    real = numba_xent.sparse.sparse_cross_entropy_with_grad

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append(result[1])
        return result

    monkeypatch.setattr(numba_xent.sparse, "sparse_cross_entropy_with_grad", spy)
    monkeypatch.setattr(numba_xent.sparse, "sparse_cross_entropy_grad", None)  # would fail if called
    logits = rng.standard_normal((4, 3))
    labels = np.array([0, 1, 2, 0])
    gradient = autograd.grad(lambda z: 3.0 * nx_autograd.sparse_cross_entropy(z, labels))(logits)
    assert len(calls) == 1
    np.testing.assert_allclose(gradient, 3.0 * calls[0], rtol=1e-15)
    # Outside a trace the call is the plain loss, with no gradient computed.
    calls.clear()
    assert nx_autograd.sparse_cross_entropy(logits, labels) == numba_xent.sparse.sparse_cross_entropy(logits, labels)
    assert calls == []


def test_float32_gradient_keeps_its_dtype(rng):
    logits = rng.standard_normal((6, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 0, 1])
    for scale in (1.0, 0.5):
        gradient = autograd.grad(lambda z, s=scale: s * nx_autograd.sparse_cross_entropy(z, labels))(logits)
        assert gradient.dtype == np.float32
        np.testing.assert_allclose(
            gradient,
            scale * autograd.grad(lambda z: _plain_loss(z, labels))(logits.astype(float)),
            rtol=1e-5,
            atol=1e-7,
        )


def test_classes_along_another_axis_with_reduction_none(rng):
    logits = rng.standard_normal((3, 5, 2))  # classes along axis 1
    labels = rng.integers(0, 5, (3, 2))
    row_scale = rng.standard_normal((3, 2))

    def ours(z):
        return anp.sum(nx_autograd.sparse_cross_entropy(z, labels, axis=1, reduction="none") * row_scale)

    def plain(z):
        moved = anp.reshape(anp.transpose(z, (0, 2, 1)), (6, 5))
        return anp.sum(_plain_loss(moved, labels.reshape(-1), reduction="none") * row_scale.reshape(-1))

    np.testing.assert_allclose(autograd.grad(ours)(logits), autograd.grad(plain)(logits), rtol=1e-10, atol=1e-12)


def test_bad_input_errors(rng):
    with pytest.raises(ValueError, match=r"label 5 at index \(1,\) is outside \[0, 3\)"):
        autograd.grad(lambda z: nx_autograd.sparse_cross_entropy(z, np.array([0, 5])))(rng.standard_normal((2, 3)))
    with pytest.raises(TypeError, match="labels must be an array of integers"):
        nx_autograd.sparse_cross_entropy(rng.standard_normal((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        nx_autograd.sparse_cross_entropy(rng.standard_normal((2, 3)), np.array([0, 1]), reduction="avg")
