"""Which twin of a row kernel runs: the parallel kernel, or its serial twin (same bits).

- Small inputs run serially: a parallel launch costs more than the whole work below ``PARALLEL_MIN_ELEMENTS``.
- A forked child always runs serially. GNU OpenMP (Numba's ``omp`` layer) terminates a forked child that launches
  a parallel region after its parent did; the serial twins use no threading layer at all, so children of
  ``fork`` (``multiprocessing``, PyTorch's ``DataLoader`` workers) compute the parent's results at one-thread speed.
- Numba's ``workqueue`` layer (chosen only where neither OpenMP nor TBB is installed) aborts the process when two
  threads launch parallel kernels at once: there, a launch that finds another in flight runs serially instead.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import numba

if TYPE_CHECKING:
    from ._jit import RowKernel

# Below this many logits a call runs serially (measured crossover of the forward kernels on two cores).
PARALLEL_MIN_ELEMENTS = 1 << 16

_in_forked_child = False
_workqueue_lock = threading.Lock()
_layer: str | None = None  # Numba's threading layer, known after the first parallel launch


def _after_fork_in_child() -> None:
    global _in_forked_child
    _in_forked_child = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def launch(kernel: RowKernel, n_elements: int, arguments: tuple) -> Any:
    """Run ``kernel`` on ``arguments`` (in its parameters' order), in parallel unless the work is small or this is a
    forked child. Callers name the arguments through ``kernel.launch(n_elements, name=value, ...)``."""
    if _in_forked_child or n_elements < PARALLEL_MIN_ELEMENTS:
        return kernel.serial(*arguments)
    if _layer is not None and _layer != "workqueue":
        return kernel.parallel(*arguments)
    # The layer is unknown (first launch) or workqueue: one parallel launch at a time, the others run serially.
    if not _workqueue_lock.acquire(blocking=False):
        return kernel.serial(*arguments)
    try:
        return kernel.parallel(*arguments)
    finally:
        _learn_layer()
        _workqueue_lock.release()


def _learn_layer() -> None:
    global _layer
    if _layer is None:
        try:
            _layer = numba.threading_layer()
        except ValueError:  # no parallel region has run yet
            pass
