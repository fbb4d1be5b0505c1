"""``softcap`` in the sparse losses: against the float64 reference on capped logits, finite differences through the
cap, and PyTorch autograd of the written-out cap."""

from __future__ import annotations

import numpy as np
import pytest
import references as ref
from helpers import SENTINEL, assert_close, make_labels, make_logits, rel_atol

import numba_xent as nx

OPTIONS = [
    {},
    {"reduction": "none"},
    {"reduction": "sum", "class_weight": True, "label_smoothing": 0.2},
    {"z_loss": 1e-3, "sample_weight": True, "ignore": True},
]


def _case(rng, options, shape=(6, 9), dtype=np.float64):
    options = dict(options)
    logits = make_logits(rng, shape, dtype, scale=40.0)  # beyond the cap: tanh saturates
    labels = make_labels(rng, shape[:-1], shape[-1], ignore_frac=0.3 if options.pop("ignore", False) else 0.0)
    if options.get("class_weight") is True:
        options["class_weight"] = rng.uniform(0.5, 2.0, shape[-1])
    if options.get("sample_weight") is True:
        options["sample_weight"] = rng.uniform(0.5, 2.0, shape[:-1])
    return logits, labels, options


def _capped(logits, softcap):
    return softcap * np.tanh(np.asarray(logits, np.float64) / softcap)


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_is_the_loss_of_the_capped_logits(rng, options, dtype):
    logits, labels, options = _case(rng, options, dtype=dtype)
    expected = ref.sparse_cross_entropy(_capped(logits, 30.0), labels, **options)
    actual = nx.sparse_cross_entropy(logits, labels, softcap=30.0, **options)
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    assert_close(actual, expected, rtol=rtol, atol=rel_atol(expected, rtol))


@pytest.mark.parametrize("options", OPTIONS)
def test_gradient_through_the_cap(rng, options):
    logits, labels, options = _case(rng, options, shape=(4, 5))
    reduction = options.pop("reduction", "mean")

    def capped_loss(z, reduction, **kwargs):
        return ref.sparse_cross_entropy(_capped(z, 30.0), reduction=reduction, **kwargs)

    expected = ref.loss_numeric_grad(capped_loss, logits, reduction, labels=labels, **options)
    grad = nx.sparse_cross_entropy_grad(logits, labels, softcap=30.0, reduction=reduction, **options)
    assert_close(grad, expected, rtol=1e-6, atol=1e-9)
    loss, fused = nx.sparse_cross_entropy_with_grad(logits, labels, softcap=30.0, reduction=reduction, **options)
    np.testing.assert_array_equal(fused, grad)
    in_place = logits.copy()
    loss_in_place, result = nx.sparse_cross_entropy_with_grad(
        in_place, labels, softcap=30.0, reduction=reduction, out=in_place, **options
    )
    assert result is in_place
    np.testing.assert_array_equal(in_place, grad)
    assert_close(loss_in_place, loss, rtol=0)


def test_against_pytorch_autograd(rng):
    torch = pytest.importorskip("torch")
    logits, labels, _ = _case(rng, {}, shape=(3, 5, 7))
    labels[0, 0] = -100
    x = torch.from_numpy(np.moveaxis(logits, -1, 1).copy()).requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(20.0 * torch.tanh(x / 20.0), torch.from_numpy(labels), label_smoothing=0.1)
    loss.backward()
    ours, grad = nx.sparse_cross_entropy_with_grad(logits, labels, softcap=20.0, label_smoothing=0.1)
    assert_close(ours, loss.item(), rtol=1e-12)
    assert_close(grad, np.moveaxis(x.grad.numpy(), 1, -1), rtol=1e-10, atol=1e-15)


def test_bad_softcap_leaves_out_untouched(rng):
    logits, labels, _ = _case(rng, {})
    out = np.full(logits.shape, SENTINEL)
    for bad, error in ((0.0, ValueError), (-1.0, ValueError), (np.inf, ValueError), ("30", TypeError)):
        with pytest.raises(error, match="softcap"):
            nx.sparse_cross_entropy_with_grad(logits, labels, softcap=bad, out=out)
    with pytest.raises(ValueError, match="softcap"):
        nx.sparse_cross_entropy(np.abs(logits), labels, softcap=30.0, from_logits=False)
    np.testing.assert_array_equal(out, SENTINEL)
