"""The worked examples run: a few epochs of the digits MLP reach far above chance and write their figure."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def digits_mlp():
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    pytest.importorskip("matplotlib")
    return _load("digits_mlp")


def test_digits_mlp_numpy(digits_mlp, tmp_path):
    figure = tmp_path / "digits.png"
    (history,) = digits_mlp.run("numpy", digits_mlp.Config(epochs=3, progress=False), figure)
    assert history.test_accuracy[-1] > 0.85  # chance is 0.1
    assert len(history.test_loss) == 3 and history.train_loss[-1] < history.train_loss[0]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_digits_mlp_torch_backend_matches_numpy(digits_mlp, tmp_path):
    pytest.importorskip("torch")
    config = digits_mlp.Config(epochs=3, progress=False)
    numpy_history, torch_history = digits_mlp.run("both", config, tmp_path / "both.png")
    assert torch_history.test_accuracy[-1] > 0.85
    # Same initialisation, batches and update rule in float32: the accuracies agree to a test sample or two.
    n_test = 450
    assert abs(torch_history.test_accuracy[-1] - numpy_history.test_accuracy[-1]) <= 2 / n_test
    assert (tmp_path / "both.png").exists()
