"""Type aliases of the public API."""

from typing import Literal

import numpy as np
from numpy.typing import NDArray

Reduction = Literal["mean", "sum", "none"]
FloatArray = NDArray[np.floating]
# A "mean" or "sum" is a NumPy scalar (float32 or float64); "none" gives an array of the batch shape.
Loss = np.floating | NDArray[np.floating]
