"""Numba options, set once for the package, and the one way kernels and their helpers are compiled.

- ``@jit`` compiles a helper (or a serial loop) with the package's options. Helpers are plain functions: an option
  that is absent is ``None``, and ``if x is None`` branches are pruned when Numba compiles the ``None``
  specialisation. Small helpers are inlined by LLVM into the kernels that call them.
- ``@row_kernel`` compiles a row loop twice from one source: ``.parallel`` (``prange`` spread over every core) and
  ``.serial`` (``prange`` runs as ``range``: small inputs, forked children). Both add their block sums in the same
  order, so they return the same bits.
- Helpers whose code depends on an argument's *type* (a bit cast, the SIMD ``exp``) are ``@intrinsic`` in
  ``_vecmath``: they emit LLVM IR for the type they are given.

No blanket ``fastmath``: NaN and inf behaviour is part of the contract. Only accumulating loops allow
``reassoc``/``contract`` (a sum needs it to vectorise).
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Callable
from typing import Any

from numba import njit

JIT_OPTIONS: dict[str, Any] = dict(nogil=True, error_model="numpy", cache=True)
REASSOC_OPTIONS: dict[str, Any] = dict(JIT_OPTIONS, fastmath={"reassoc", "contract"})


def jit(func: Callable | None = None, *, reassoc: bool = False) -> Any:
    """Compile ``func`` with the package's options (``reassoc=True``: also allow reassociating sums)."""
    options = REASSOC_OPTIONS if reassoc else JIT_OPTIONS

    def decorate(function):
        return _njit(function, **options)

    return decorate if func is None else decorate(func)


_warned_no_cache = False


def _njit(func: Callable, **options: Any) -> Any:
    """``njit(**options)(func)``, without the disk cache where no cache directory can be written.

    Numba caches next to the source, else in the user's cache directory (or ``NUMBA_CACHE_DIR``); where none of
    these is writable (a read-only install with no writable home) it refuses ``cache=True`` at decoration time,
    which would make the import fail. Then every kernel compiles in memory, with one warning.
    """
    global _warned_no_cache
    try:
        return njit(**options)(func)
    except RuntimeError as error:
        if "cannot cache" not in str(error) or not options.get("cache"):
            raise
        if not _warned_no_cache:
            _warned_no_cache = True
            warnings.warn(
                f"numba_xent: no writable Numba cache directory ({error}); kernels are compiled in every process. "
                "Set NUMBA_CACHE_DIR to a writable directory to cache them.",
                RuntimeWarning,
                stacklevel=3,
            )
        return njit(**dict(options, cache=False))(func)


class RowKernel:
    """A row loop compiled as a parallel kernel and as its serial twin, from one source."""

    def __init__(self, func: Callable, name: str | None = None):
        self.__name__ = name or func.__name__
        self.__doc__ = func.__doc__
        self.parallel = _njit(func, parallel=True, **JIT_OPTIONS)
        self.serial = _njit(_renamed(func, "serial"), **JIT_OPTIONS)

    def __repr__(self) -> str:
        return f"<row kernel {self.__name__}>"


def row_kernel(func: Callable) -> RowKernel:
    """Decorator: ``func``'s ``prange`` loop as a :class:`RowKernel` (``.parallel`` and ``.serial``)."""
    return RowKernel(func)


def _renamed(func: Callable, suffix: str) -> Callable:
    """A copy of ``func`` under another qualified name.

    Numba's disk cache files a compiled function by module, qualified name and signature, not by its compile options:
    the serial twin needs a name of its own, or it would load the parallel twin's machine code.
    """
    copy = types.FunctionType(func.__code__, func.__globals__, func.__name__, func.__defaults__, func.__closure__)
    copy.__qualname__ = f"{func.__qualname__}.{suffix}"
    copy.__module__ = func.__module__
    copy.__doc__ = func.__doc__
    return copy
