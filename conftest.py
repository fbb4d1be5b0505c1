"""Root conftest: the doctests of the optional adapters need their libraries (optional extras): without one, its
module's doctests are not collected."""

import importlib.util

_OPTIONAL = {"dask": "numba_xent/dask.py", "torch": "numba_xent/torch.py", "autograd": "numba_xent/autograd.py"}
collect_ignore = [path for module, path in _OPTIONAL.items() if importlib.util.find_spec(module) is None]
