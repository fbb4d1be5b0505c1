"""A two-layer MLP in plain NumPy on scikit-learn's bundled digits (8x8 images, 10 classes; no download), trained
with ``numba_xent.CrossEntropyLoss.loss_and_grad``; the same model trained through the PyTorch adapter for
comparison.

    python examples/digits_mlp.py                    # NumPy, 30 epochs, figure in docs/digits_mlp.png
    python examples/digits_mlp.py --backend torch    # the same model, same initialisation and batches, in PyTorch
    python examples/digits_mlp.py --backend both     # both, drawn in one figure

Needs ``pip install "numba_xent[examples]"`` (scikit-learn, tqdm, matplotlib), and PyTorch for ``--backend torch``.
"""

from __future__ import annotations

import argparse
import pathlib
import time
from dataclasses import dataclass, field

import numpy as np

import numba_xent as nx

DEFAULT_FIGURE = pathlib.Path(__file__).resolve().parents[1] / "docs" / "digits_mlp.png"


@dataclass
class Config:
    epochs: int = 30
    hidden: int = 128
    batch_size: int = 32
    learning_rate: float = 0.05
    momentum: float = 0.9
    label_smoothing: float = 0.0
    seed: int = 0
    progress: bool = True


@dataclass
class History:
    backend: str
    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0


def load_digits_split(seed: int = 0):
    """(x_train, y_train, x_test, y_test): standardised float32 features, a stratified 75/25 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    features, labels = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=0.25, random_state=seed, stratify=labels
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1.0  # +1: some pixels are always 0
    return (
        ((x_train - mean) / std).astype(np.float32),
        y_train.astype(np.int64),
        ((x_test - mean) / std).astype(np.float32),
        y_test.astype(np.int64),
    )


def init_params(n_features: int, hidden: int, n_classes: int, seed: int) -> dict[str, np.ndarray]:
    """He-initialised weights, zero biases (float32)."""
    rng = np.random.default_rng(seed)
    return {
        "w1": (rng.standard_normal((n_features, hidden)) * np.sqrt(2.0 / n_features)).astype(np.float32),
        "b1": np.zeros(hidden, np.float32),
        "w2": (rng.standard_normal((hidden, n_classes)) * np.sqrt(2.0 / hidden)).astype(np.float32),
        "b2": np.zeros(n_classes, np.float32),
    }


def forward_numpy(params: dict[str, np.ndarray], features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hidden pre-activations, logits)."""
    hidden = features @ params["w1"] + params["b1"]
    return hidden, np.maximum(hidden, 0.0) @ params["w2"] + params["b2"]


def _record(history: History, logits_train, y_train, logits_test, y_test) -> None:
    # evaluate() reads each set's logits once for its loss and accuracy.
    train, test = nx.evaluate(logits_train, y_train), nx.evaluate(logits_test, y_test)
    history.train_loss.append(train.loss)
    history.train_accuracy.append(train.accuracy)
    history.test_loss.append(test.loss)
    history.test_accuracy.append(test.accuracy)


def _epochs(config: Config, backend: str):
    from tqdm import tqdm

    return tqdm(range(config.epochs), desc=f"digits MLP ({backend})", disable=not config.progress, unit="epoch")


def train_numpy(data, config: Config) -> History:
    """Minibatch SGD with momentum; the loss and its gradient come from one ``loss_and_grad`` call per batch."""
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    # The matrices are tiny (32x64 by 64x128): one BLAS thread is fastest, and idle OpenBLAS threads spinning
    # after each product would otherwise hold the cores numba_xent's thread pool needs (measured: 7 s -> 1.2 s).
    with threadpool_limits(limits=1, user_api="blas"):
        return _train_numpy(data, config)


def _train_numpy(data, config: Config) -> History:
    x_train, y_train, x_test, y_test = data
    params = init_params(x_train.shape[1], config.hidden, 10, config.seed)
    velocity = {name: np.zeros_like(value) for name, value in params.items()}
    loss_fn = nx.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    order_rng = np.random.default_rng(config.seed + 1)
    history = History("numpy")
    start = time.perf_counter()
    bar = _epochs(config, "numpy")
    for _ in bar:
        order = order_rng.permutation(len(x_train))
        for first in range(0, len(order), config.batch_size):
            batch = order[first : first + config.batch_size]
            features, labels = x_train[batch], y_train[batch]
            hidden, logits = forward_numpy(params, features)
            # The gradient of the mean loss with respect to the logits, written over the logits (not needed again).
            _, grad_logits = loss_fn.loss_and_grad(logits, labels, out=logits)
            activations = np.maximum(hidden, 0.0)
            grad_hidden = (grad_logits @ params["w2"].T) * (hidden > 0.0)
            grads = {
                "w2": activations.T @ grad_logits,
                "b2": grad_logits.sum(axis=0),
                "w1": features.T @ grad_hidden,
                "b1": grad_hidden.sum(axis=0),
            }
            for name, grad in grads.items():
                velocity[name] = config.momentum * velocity[name] + grad
                params[name] -= config.learning_rate * velocity[name]
        _record(history, forward_numpy(params, x_train)[1], y_train, forward_numpy(params, x_test)[1], y_test)
        bar.set_postfix(test_accuracy=f"{history.test_accuracy[-1]:.4f}")
    history.seconds = time.perf_counter() - start
    return history


def train_torch(data, config: Config) -> History:
    """The same model, initialisation, batches and update rule, differentiated by PyTorch autograd through
    ``numba_xent.torch.cross_entropy``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices, as in train_numpy: PyTorch's idle threads would hold numba_xent's cores
    try:
        return _train_torch(data, config)
    finally:
        torch.set_num_threads(threads)


def _train_torch(data, config: Config) -> History:
    import torch

    import numba_xent.torch as nx_torch

    x_train, y_train, x_test, y_test = (torch.from_numpy(array) for array in data)
    params = {
        name: torch.from_numpy(value).requires_grad_(True)
        for name, value in init_params(x_train.shape[1], config.hidden, 10, config.seed).items()
    }
    velocity = {name: torch.zeros_like(value) for name, value in params.items()}
    order_rng = np.random.default_rng(config.seed + 1)

    def forward(features):
        return torch.relu(features @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]

    history = History("torch")
    start = time.perf_counter()
    bar = _epochs(config, "torch")
    for _ in bar:
        order = torch.from_numpy(order_rng.permutation(len(x_train)))
        for first in range(0, len(order), config.batch_size):
            batch = order[first : first + config.batch_size]
            loss = nx_torch.cross_entropy(
                forward(x_train[batch]), y_train[batch], label_smoothing=config.label_smoothing
            )
            for param in params.values():
                param.grad = None
            loss.backward()
            with torch.no_grad():
                for name, param in params.items():
                    velocity[name].mul_(config.momentum).add_(param.grad)
                    param.sub_(config.learning_rate * velocity[name])
        with torch.no_grad():
            _record(history, forward(x_train).numpy(), data[1], forward(x_test).numpy(), data[3])
        bar.set_postfix(test_accuracy=f"{history.test_accuracy[-1]:.4f}")
    history.seconds = time.perf_counter() - start
    return history


def plot_histories(histories: list[History], path: pathlib.Path) -> None:
    """Train/test loss and accuracy per epoch, one line style per backend, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    styles = {"numpy": "-", "torch": "--"}
    for history in histories:
        epochs = np.arange(1, len(history.test_loss) + 1)
        style = styles.get(history.backend, ":")
        for axes, train, test in (
            (loss_axes, history.train_loss, history.test_loss),
            (accuracy_axes, history.train_accuracy, history.test_accuracy),
        ):
            axes.plot(epochs, train, style, color="tab:blue", label=f"train ({history.backend})")
            axes.plot(epochs, test, style, color="tab:orange", label=f"test ({history.backend})")
    loss_axes.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="Loss")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy", title="Top-1 accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle("Two-layer MLP on scikit-learn digits, trained with numba_xent")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run(backend: str = "numpy", config: Config | None = None, figure: pathlib.Path | None = DEFAULT_FIGURE):
    """Train with the chosen backend(s) ("numpy", "torch" or "both"); returns the histories and writes the figure."""
    config = config or Config()
    data = load_digits_split(config.seed)
    trainers = {"numpy": train_numpy, "torch": train_torch}
    names = list(trainers) if backend == "both" else [backend]
    histories = [trainers[name](data, config) for name in names]
    if figure is not None:
        plot_histories(histories, figure)
    return histories


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["numpy", "torch", "both"], default="numpy")
    parser.add_argument("--epochs", type=int, default=Config.epochs)
    parser.add_argument("--figure", type=pathlib.Path, default=DEFAULT_FIGURE)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    config = Config(epochs=args.epochs, progress=not args.no_progress)
    for history in run(args.backend, config, args.figure):
        print(
            f"{history.backend}: test accuracy {history.test_accuracy[-1]:.4f}, test loss {history.test_loss[-1]:.4f}, "
            f"{history.seconds:.2f} s for {config.epochs} epochs"
        )
    print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
