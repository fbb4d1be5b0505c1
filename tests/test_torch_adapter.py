"""numba_xent.torch against PyTorch's own F.cross_entropy and autograd: values, gradients, gradcheck, no copies
of contiguous CPU tensors, and clear errors for what it does not take."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
nx_torch = pytest.importorskip("numba_xent.torch")

SHAPES = {
    "1-D (C,) with a scalar target": ((5,), ()),
    "(N, C)": ((7, 5), (7,)),
    "(N, C, d)": ((3, 5, 4), (3, 4)),
    "(N, C, d1, d2)": ((2, 5, 3, 2), (2, 3, 2)),
}
OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"label_smoothing": 0.15},
    {"ignore_index": 2, "reduction": "mean"},
    {"weight": True, "label_smoothing": 0.1},
    {"weight": True, "reduction": "none", "ignore_index": 0},
]


def _inputs(shape_name, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    input_shape, target_shape = SHAPES[shape_name]
    logits = 3.0 * torch.randn(input_shape, generator=generator, dtype=dtype)
    target = torch.randint(0, 5, target_shape, generator=generator)
    weight = torch.rand(5, generator=generator, dtype=dtype) + 0.1
    return logits, target, weight


def _options(options, weight):
    options = dict(options)
    options["weight"] = weight if options.pop("weight", False) else None
    return options


@pytest.mark.parametrize("shape_name", SHAPES)
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "default")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_matches_torch_forward_and_backward(shape_name, options, dtype):
    logits, target, weight = _inputs(shape_name, dtype)
    kwargs = _options(options, weight.to(dtype))
    ours_input = logits.clone().requires_grad_(True)
    torch_input = logits.clone().requires_grad_(True)
    ours = nx_torch.cross_entropy(ours_input, target, **kwargs)
    expected = F.cross_entropy(torch_input, target, **kwargs)
    assert ours.dtype == expected.dtype and ours.shape == expected.shape
    tolerance = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(ours, expected, **tolerance)
    upstream = torch.randn(expected.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    (ours * upstream).sum().backward()
    (expected * upstream).sum().backward()
    torch.testing.assert_close(ours_input.grad, torch_input.grad, **tolerance)


@pytest.mark.parametrize("shape_name", SHAPES)
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "default")
def test_gradcheck_float64(shape_name, options):
    logits, target, weight = _inputs(shape_name)
    kwargs = _options(options, weight)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: nx_torch.cross_entropy(x, target, **kwargs), (logits,))


def test_module_matches_torch_module():
    logits, target, weight = _inputs("(N, C, d)")
    ours = nx_torch.CrossEntropyLoss(weight=weight, label_smoothing=0.05, reduction="sum")
    expected = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=0.05, reduction="sum")
    torch.testing.assert_close(ours(logits, target), expected(logits, target), rtol=1e-12, atol=1e-12)
    assert isinstance(ours, torch.nn.Module)
    assert "weight" in dict(ours.named_buffers())
    restored = pickle.loads(pickle.dumps(ours))
    torch.testing.assert_close(restored(logits, target), ours(logits, target), rtol=0, atol=0)
    assert "label_smoothing=0.05" in repr(ours)


def test_module_validates_options_at_construction():
    with pytest.raises(ValueError, match="reduction must be one of"):
        nx_torch.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError, match=r"label_smoothing must be a number in \[0, 1\]"):
        nx_torch.CrossEntropyLoss(label_smoothing=2.0)


def test_contiguous_cpu_tensors_are_not_copied(monkeypatch):
    """The kernels see NumPy views of the tensors' own memory, and the gradient is a tensor over the kernel's
    output array."""
    seen = {}
    real = nx_torch.sparse_cross_entropy_with_grad

    def spy(logits, labels, **options):
        seen["logits"], seen["labels"] = logits, labels
        loss, grad = real(logits, labels, **options)
        seen["grad"] = grad
        return loss, grad

    monkeypatch.setattr(nx_torch, "sparse_cross_entropy_with_grad", spy)
    logits = torch.randn(6, 4, dtype=torch.float32, requires_grad=True)
    target = torch.randint(0, 4, (6,))
    nx_torch.cross_entropy(logits, target, reduction="sum").backward()
    assert seen["logits"].__array_interface__["data"][0] == logits.data_ptr()
    assert seen["labels"].__array_interface__["data"][0] == target.data_ptr()
    assert np.shares_memory(seen["logits"], logits.detach().numpy())
    # loss.backward() hands the kernel's gradient array to .grad as it is: no multiply, no copy.
    assert logits.grad.data_ptr() == seen["grad"].__array_interface__["data"][0]
    np.testing.assert_array_equal(logits.grad.numpy(), seen["grad"])


def test_forward_only_under_no_grad_uses_the_forward_kernel(monkeypatch):
    monkeypatch.setattr(nx_torch, "sparse_cross_entropy_with_grad", None)  # would fail if called
    logits = torch.randn(4, 3, requires_grad=True)
    with torch.no_grad():
        loss = nx_torch.cross_entropy(logits, torch.tensor([0, 1, 2, 0]))
    torch.testing.assert_close(loss, F.cross_entropy(logits.detach(), torch.tensor([0, 1, 2, 0])))
    assert not loss.requires_grad


def test_second_backward_with_retain_graph():
    logits = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 1, 2, 1, 0])
    loss = nx_torch.cross_entropy(logits, target)
    (first,) = torch.autograd.grad(loss, logits, retain_graph=True)
    (second,) = torch.autograd.grad(loss, logits, grad_outputs=torch.tensor(2.0, dtype=torch.float64))
    torch.testing.assert_close(second, 2 * first, rtol=0, atol=0)


def test_float16_input():
    logits = torch.randn(8, 6).to(torch.float16)
    target = torch.randint(0, 6, (8,))
    ours_input = logits.clone().requires_grad_(True)
    loss = nx_torch.cross_entropy(ours_input, target)
    assert loss.dtype == torch.float16
    loss.backward()
    reference_input = logits.to(torch.float64).requires_grad_(True)
    F.cross_entropy(reference_input, target).backward()
    torch.testing.assert_close(loss.double(), F.cross_entropy(logits.double(), target), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(ours_input.grad.double(), reference_input.grad, rtol=1e-2, atol=1e-3)


def test_strided_input_matches():
    base = torch.randn(5, 8, dtype=torch.float64)
    logits = base[:, ::2].requires_grad_(True)  # not contiguous
    target = torch.tensor([0, 3, 1, 2, 3])
    reference = base[:, ::2].clone().requires_grad_(True)
    nx_torch.cross_entropy(logits, target).backward()
    F.cross_entropy(reference, target).backward()
    torch.testing.assert_close(logits.grad, reference.grad, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------------------------- errors


def test_non_cpu_tensors_are_rejected():
    target = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"input is on device 'meta'.*CPU tensors only"):
        nx_torch.cross_entropy(torch.empty(2, 3, device="meta"), target)
    with pytest.raises(ValueError, match=r"target is on device 'meta'"):
        nx_torch.cross_entropy(torch.zeros(2, 3), torch.empty(2, dtype=torch.long, device="meta"))
    with pytest.raises(ValueError, match=r"weight is on device 'meta'"):
        nx_torch.cross_entropy(torch.zeros(2, 3), target, weight=torch.empty(3, device="meta"))


def test_target_requiring_grad_is_rejected():
    with pytest.raises(ValueError, match="target requires grad"):
        nx_torch.cross_entropy(torch.zeros(2, 3), torch.zeros(2, requires_grad=True))


def test_weight_requiring_grad_is_rejected():
    with pytest.raises(ValueError, match="weight requires grad"):
        nx_torch.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), weight=torch.ones(3, requires_grad=True))


@pytest.mark.parametrize(
    "input, target, exception, pattern",
    [
        (torch.zeros(2, 3, dtype=torch.bfloat16), torch.tensor([0, 1]), TypeError, "float16, float32 or float64"),
        (torch.zeros(2, 3, dtype=torch.int64), torch.tensor([0, 1]), TypeError, "float16, float32 or float64"),
        (torch.zeros(2, 3), torch.tensor([0.0, 1.0]), TypeError, "integer tensor of class indices"),
        (torch.zeros(2, 3), torch.tensor([True, False]), TypeError, "integer tensor of class indices"),
        (torch.zeros(2, 3), torch.tensor([0, 3]), ValueError, r"label 3 at index \(1,\) is outside \[0, 3\)"),
        (torch.zeros(2, 3), torch.tensor([0, 1, 2]), ValueError, r"labels have shape \(3,\)"),
        (torch.zeros(2, 3, 4), torch.tensor([0, 1]), ValueError, r"labels have shape \(2,\)"),
        (torch.tensor(1.0), torch.tensor(0), ValueError, "at least one dimension"),
        (np.zeros((2, 3)), torch.tensor([0, 1]), TypeError, "input must be a torch.Tensor"),
    ],
)
def test_bad_input_errors(input, target, exception, pattern):
    if isinstance(input, torch.Tensor) and input.is_floating_point():
        input = input.clone().requires_grad_(True)
    with pytest.raises(exception, match=pattern):
        nx_torch.cross_entropy(input, target)
    if isinstance(input, torch.Tensor) and input.requires_grad:
        assert input.grad is None


def test_bad_options_errors():
    with pytest.raises(ValueError, match="reduction must be one of"):
        nx_torch.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match=r"class_weight has shape \(2,\)"):
        nx_torch.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), weight=torch.ones(2))


def test_importing_numba_xent_does_not_import_torch():
    code = "import sys, numba_xent, numba_xent.torch; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
