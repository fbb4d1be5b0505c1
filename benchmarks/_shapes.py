"""Shapes and inputs shared by the asv suites.

The asv shapes keep the issue's class counts and layouts but fewer rows than the ``python -m numba_xent bench``
table, so that a one-sample pass over every suite finishes in a couple of minutes on two cores.  Set
``NUMBA_XENT_ASV_SHAPES=full`` to time the table's full-size shapes instead (about 1 GB of logits each).
"""

import os

import numpy as np

MASK_FRACTION = 0.1

MODERATE = {
    # name: (shape, dtype, masked) -- masked: 10% of labels are -100 and there are class weights
    "1024x32000": ((1024, 32000), np.float32, False),
    "64x128000": ((64, 128000), np.float32, False),
    "4096x1000": ((4096, 1000), np.float32, False),
    "65536x10": ((65536, 10), np.float32, False),
    "2x256x32000 masked": ((2, 256, 32000), np.float32, True),
    "1024x32000 f64": ((1024, 32000), np.float64, False),
}
FULL = {
    "8192x32000": ((8192, 32000), np.float32, False),
    "512x128000": ((512, 128000), np.float32, False),
    "4096x1000": ((4096, 1000), np.float32, False),
    "65536x10": ((65536, 10), np.float32, False),
    "4x1024x32000 masked": ((4, 1024, 32000), np.float32, True),
    "4096x32000 f64": ((4096, 32000), np.float64, False),
}
SHAPES = FULL if os.environ.get("NUMBA_XENT_ASV_SHAPES") == "full" else MODERATE


def make_inputs(name, seed=0):
    """(logits ~ N(0, 2), int64 labels, class_weight or None, options for the sparse functions)."""
    shape, dtype, masked = SHAPES[name]
    rng = np.random.default_rng(seed)
    logits = (2.0 * rng.standard_normal(shape, dtype=np.float32)).astype(dtype, copy=False)
    labels = rng.integers(0, shape[-1], size=shape[:-1], dtype=np.int64)
    class_weight = None
    options = {}
    if masked:
        labels[rng.random(labels.shape) < MASK_FRACTION] = -100
        class_weight = rng.uniform(0.5, 1.5, shape[-1]).astype(dtype)
        options = {"class_weight": class_weight, "ignore_index": -100}
    return logits, labels, options
