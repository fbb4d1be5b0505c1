"""Numba options, set once for the package, and the one way kernels and their helpers are compiled.

- ``@jit`` compiles a helper with the package's options, callable from compiled code only (no Python or C
  wrapper: a helper is no entry point, and each wrapper costs compile time). Helpers are plain functions: an option
  that is absent is ``None``, and ``if x is None`` branches are pruned when Numba compiles the ``None``
  specialisation (only there: a branch for ``x is None`` is compiled into the specialisations where ``x`` is an
  array; where that costs, ``@overload`` chooses the code from the types, as ``rows.row_stats_into`` does). A helper
  without a loop is inlined into its caller's Numba IR (``inline="always"``), so it takes its caller's fastmath
  flags; one with a loop is compiled on its own and LLVM inlines it. A helper that runs once per row takes the 2-D
  arrays and a row number, never a row view: a view made in a row loop and passed to a call costs an atomic
  reference-count increment and decrement per row (measured at half of a 10-class forward).
- A constant passed to a helper that is compiled on its own is typed ``Literal[int](0)`` and compiles a
  specialisation of its own beside the ``int64`` one (0.06-0.13 s each on a first call, measured): calls write
  ``np.intp(0)``, not ``0``, for a start index.
- ``@row_kernel`` compiles a row loop twice from one source: ``.parallel`` (``prange`` spread over every core) and
  ``.serial`` (``prange`` runs as ``range``: small inputs, forked children). Both add their block sums in the same
  order, so they return the same bits.
- Helpers whose code depends on an argument's *type* (a bit cast, the SIMD ``exp``) are ``@intrinsic`` in
  ``_vecmath``: they emit LLVM IR for the type they are given.

No blanket ``fastmath``: NaN and inf behaviour is part of the contract. Only accumulating loops allow
``reassoc``/``contract`` (a sum needs it to vectorise).
"""

from __future__ import annotations

import dis
import hashlib
import inspect
import pathlib
import types
import warnings
from collections.abc import Callable
from typing import Any

from numba import njit
from numba.core.caching import FunctionCache
from numba.core.registry import CPUDispatcher

JIT_OPTIONS: dict[str, Any] = dict(nogil=True, error_model="numpy", cache=True)
REASSOC_OPTIONS: dict[str, Any] = dict(JIT_OPTIONS, fastmath={"reassoc", "contract"})
HELPER_ONLY_OPTIONS: dict[str, Any] = dict(no_cpython_wrapper=True, no_cfunc_wrapper=True)
# For ``@overload`` implementations: compiled into their callers, which are cached (or not) with them. A cache of their
# own would fail where no cache directory is writable (Numba raises at compile time instead of warning).
OVERLOAD_OPTIONS: dict[str, Any] = dict(JIT_OPTIONS, cache=False)


def jit(func: Callable | None = None, *, reassoc: bool = False, from_python: bool = False) -> Any:
    """Compile ``func`` with the package's options; ``reassoc=True`` also allows reassociating sums (so that they
    vectorise); ``from_python=True`` for a helper that Python code calls too (it gets a Python wrapper)."""

    def decorate(function):
        options = REASSOC_OPTIONS if reassoc else JIT_OPTIONS
        if not from_python:
            # No wrappers for calls from Python or C: their lowering, optimisation and machine code were 0.25-0.3 s
            # of a cold fused call (measured).
            options = dict(options, **HELPER_ONLY_OPTIONS)
        if not _has_loop(function):
            # Compiled on its own, every small helper pays its own typing and LLVM pipeline: inlined into its
            # callers' IR instead, the cold first call took 0.35-0.8 s less (measured on four kernels).
            options = dict(options, inline="always")
        dispatcher = _njit(function, **options)
        if not from_python:
            dispatcher.__class__ = _CompiledCodeHelper
        return dispatcher

    return decorate if func is None else decorate(func)


class _CompiledCodeHelper(CPUDispatcher):
    """A helper without a Python wrapper. Numba would enter the missing wrapper (and crash the interpreter) if Python
    called it: this raises instead."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{self.py_func.__qualname__} is called from compiled code only (it has no Python wrapper); "
            "Python code calls its .py_func, or it is declared with @jit(from_python=True)"
        )


def _has_loop(func: Callable) -> bool:
    """Whether ``func``'s bytecode holds a loop (a ``for``, or any backward jump)."""
    for instruction in dis.get_instructions(func):
        if instruction.opname == "FOR_ITER" or "BACKWARD" in instruction.opname:
            return True
        if instruction.opname == "JUMP_ABSOLUTE" and instruction.argval <= instruction.offset:  # Python 3.10
            return True
    return False


def _source_fingerprint() -> str:
    """A hash of every source file of the package."""
    digest = hashlib.sha256()
    package = pathlib.Path(__file__).parent
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class _PackageCache(FunctionCache):
    """Numba's disk cache, with entries keyed also by the package's source fingerprint.

    Numba keys a cached function by its own file and bytecode, not by the helpers it inlines from other files: after
    an upgrade that changed only ``_vecmath.py``, the kernels would load their old machine code. The fingerprint
    makes every change of the package's source a cache miss.
    """

    fingerprint = _source_fingerprint()

    def _index_key(self, sig, codegen):
        return (*super()._index_key(sig, codegen), self.fingerprint)


_warned_no_cache = False


def _njit(func: Callable, **options: Any) -> Any:
    """``njit(**options)(func)``, without the disk cache where no cache directory can be written.

    Numba caches next to the source, else in the user's cache directory (or ``NUMBA_CACHE_DIR``); where none of
    these is writable (a read-only install with no writable home) it refuses ``cache=True`` at decoration time,
    which would make the import fail. Then every kernel compiles in memory, with one warning.
    """
    global _warned_no_cache
    try:
        dispatcher = njit(**options)(func)
        if options.get("cache"):
            dispatcher._cache = _PackageCache(dispatcher.py_func)
        return dispatcher
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
    """A row loop compiled as a parallel kernel and as its serial twin, from one source.

    ``kernel.launch(n_elements, name=value, ...)`` runs the twin that ``_launch.launch`` picks for ``n_elements``
    logits, with the row loop's arguments by name.
    """

    def __init__(self, func: Callable, name: str | None = None):
        self.__name__ = name or func.__name__
        self.__doc__ = func.__doc__
        self.parallel = _njit(func, parallel=True, **JIT_OPTIONS)
        self.serial = _njit(_renamed(func, "serial"), **JIT_OPTIONS)
        self.launch = _keyword_launcher(self, func)

    def __repr__(self) -> str:
        return f"<row kernel {self.__name__}>"


def row_kernel(func: Callable) -> RowKernel:
    """Decorator: ``func``'s ``prange`` loop as a :class:`RowKernel` (``.parallel`` and ``.serial``)."""
    return RowKernel(func)


def _keyword_launcher(kernel: RowKernel, func: Callable) -> Callable[..., Any]:
    """``launch(n_elements, *, <func's parameters>)``: binds the arguments by name to ``func``'s positions and calls
    ``_launch.launch(kernel, n_elements, arguments)``.

    Generated with ``func``'s own parameter names, so that a call by name costs what a positional call costs: a
    ``**arguments`` pass-through costs ~0.6 us per layer for a 13-argument kernel (measured), a tenth of a
    small batch's whole call.
    """
    from ._launch import launch  # (_launch needs nothing from this module at run time)

    names = ", ".join(inspect.signature(func).parameters)
    namespace: dict[str, Any] = {"launch_positional": launch, "kernel": kernel}
    source = f"def launch(n_elements, *, {names}):\n    return launch_positional(kernel, n_elements, ({names},))\n"
    exec(compile(source, f"<launcher of {kernel.__name__}>", "exec"), namespace)
    launcher: Callable[..., Any] = namespace["launch"]
    return launcher


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
