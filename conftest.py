"""Root conftest: the doctests of numba_xent/dask.py need Dask, an optional extra; skip collecting them without it."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("dask") else ["numba_xent/dask.py"]
