"""The benchmark shapes and their inputs, for the table command (``python -m benchmarks.table``) and the asv
suites alike.

The asv suites keep the table's class counts and layouts with fewer rows, so that a one-sample pass over every
suite finishes in a couple of minutes on two cores. Set ``NUMBA_XENT_ASV_SHAPES=full`` to time the table's
full-size shapes instead (about 1 GB of logits each).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

MASK_FRACTION = 0.1  # share of -100 labels in ":masked" shapes (which also have class weights)

# The README table's shapes (the table command's default).
TABLE_SHAPES = (
    "8192x32000",
    "512x128000",
    "4096x1000",
    "65536x10",
    "20480x32",
    "4x1024x32000:masked",
    "4096x32000:float64",
)
# The same layouts at moderate sizes, for asv: {asv parameter name: shape token}.
MODERATE = {
    "1024x32000": "1024x32000",
    "64x128000": "64x128000",
    "4096x1000": "4096x1000",
    "65536x10": "65536x10",
    "2x256x32000 masked": "2x256x32000:masked",
    "1024x32000 f64": "1024x32000:float64",
}
FULL = {
    "8192x32000": "8192x32000",
    "512x128000": "512x128000",
    "4096x1000": "4096x1000",
    "65536x10": "65536x10",
    "4x1024x32000 masked": "4x1024x32000:masked",
    "4096x32000 f64": "4096x32000:float64",
}
SHAPES = FULL if os.environ.get("NUMBA_XENT_ASV_SHAPES") == "full" else MODERATE


@dataclass
class Case:
    shape: tuple[int, ...]
    dtype: np.dtype
    masked: bool = False  # -100 labels and class weights

    @property
    def n_classes(self) -> int:
        return self.shape[-1]

    @property
    def n_rows(self) -> int:
        return int(np.prod(self.shape[:-1]))

    @property
    def label(self) -> str:
        text = "×".join(str(d) for d in self.shape)
        if self.dtype != np.float32:
            text += f" {self.dtype.name}"
        if self.masked:
            text += f" (-100 labels {MASK_FRACTION:.0%}, class_weight)"
        return text

    def make(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Logits ~ N(0, 2), labels (int64), class_weight or None."""
        rng = np.random.default_rng(seed)
        logits = rng.standard_normal(self.shape, dtype=np.float32)
        logits *= 2.0
        logits = logits.astype(self.dtype, copy=False)
        labels = rng.integers(0, self.n_classes, size=self.shape[:-1], dtype=np.int64)
        class_weight = None
        if self.masked:
            labels[rng.random(labels.shape) < MASK_FRACTION] = -100
            class_weight = rng.uniform(0.5, 1.5, self.n_classes).astype(self.dtype)
        return logits, labels, class_weight


def parse_shape(token: str) -> Case:
    """``"8192x32000"``, ``"4x1024x32000:masked"``, ``"4096x32000:float64"`` (suffixes combine)."""
    dims, *flags = token.split(":")
    try:
        shape = tuple(int(d) for d in dims.lower().replace("×", "x").split("x"))
    except ValueError:
        raise ValueError(f"cannot parse shape {token!r}; expected e.g. 8192x32000 or 4x1024x32000:masked") from None
    dtype = np.dtype(np.float32)
    masked = False
    for flag in flags:
        if flag == "masked":
            masked = True
        elif flag in ("float16", "float32", "float64"):
            dtype = np.dtype(flag)
        else:
            raise ValueError(f"unknown shape flag {flag!r} in {token!r}; use masked, float32 or float64")
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(f"shape {token!r} needs at least two positive dimensions")
    return Case(shape, dtype, masked)


def make_inputs(name: str, seed: int = 0):
    """(logits, int64 labels, options for the sparse functions) of the asv shape ``name``."""
    logits, labels, class_weight = parse_shape(SHAPES[name]).make(seed)
    options = {} if class_weight is None else {"class_weight": class_weight, "ignore_index": -100}
    return logits, labels, options
