"""The Numba disk cache: unwritable cache directories and read-only installs still work, with one warning at most.

Each case runs in a fresh interpreter. A read-only install is a read-only bind mount of a copy of the package made
in a private mount namespace (``unshare -m``, which needs root: these tests skip elsewhere).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARNING = "numba_xent: no writable Numba cache directory"

USE_EVERYTHING = textwrap.dedent(
    """
    import warnings
    warnings.simplefilter("always")
    import numpy as np, numba_xent as nx
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 10)); y = rng.integers(0, 10, 300)
    big = rng.standard_normal((64, 3000)).astype(np.float32); big_y = rng.integers(0, 3000, 64)
    results = [
        nx.sparse_cross_entropy(x, y), nx.sparse_cross_entropy_grad(x, y).sum(),
        nx.sparse_cross_entropy_with_grad(big, big_y)[0], nx.cross_entropy(x, nx.softmax(x)),
        nx.binary_cross_entropy_with_logits(x, x > 0), nx.log_softmax(big).sum(), nx.logsumexp(x).sum(),
    ]
    import numba

    @numba.njit
    def from_users_njit(x, y):  # the overloads compile too
        return nx.sparse_cross_entropy_with_grad(x, y)[0]

    results += [from_users_njit(x, y), nx.sparse_cross_entropy(np.abs(x) + 0.1, y, from_logits=False)]
    assert all(np.isfinite(r) for r in results), results
    print("ok", nx.__file__)
    """
)


def _run(code, env, cwd, prefix=()):
    """Run ``code`` in a fresh interpreter started in ``cwd`` (so that the checkout is not on sys.path)."""
    command = [*prefix, sys.executable, "-c", code]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=cwd)


def _can_bind_read_only():
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


def _read_only_install(tmp_path):
    """A copy of the package under ``tmp_path/site`` and the command prefix that mounts it read-only."""
    if not _can_bind_read_only():
        pytest.skip("needs root and unshare to mount a read-only copy of the package")
    site = tmp_path / "site"
    shutil.copytree(os.path.join(ROOT, "numba_xent"), site / "numba_xent", ignore=shutil.ignore_patterns("__pycache__"))
    mount = f'mount --bind {site} {site} && mount -o remount,ro,bind {site} && exec "$@"'
    return site, ["unshare", "-m", "sh", "-c", mount, "sh"]


def test_unwritable_cache_dir(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR="/proc/numba_xent/cache", PYTHONPATH=ROOT)
    result = _run(USE_EVERYTHING, env, tmp_path)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr
    assert result.stderr.count(WARNING) <= 1


def test_read_only_install_caches_in_the_users_cache_directory(tmp_path):
    site, prefix = _read_only_install(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), PYTHONPATH=str(site))
    for _ in range(2):  # the second run loads what the first cached
        result = _run(USE_EVERYTHING, env, tmp_path, prefix)
        assert result.returncode == 0 and f"ok {site}" in result.stdout, result.stderr
        assert WARNING not in result.stderr
    assert not list(site.rglob("*.nbi")), "nothing may be written into the read-only install"
    assert list(home.rglob("*.nbi")), "Numba's fallback cache location (~/.cache/numba) was not used"


def test_read_only_install_with_no_writable_cache_anywhere(tmp_path):
    site, prefix = _read_only_install(tmp_path)
    env = dict(os.environ, HOME="/proc/numba_xent_home", NUMBA_CACHE_DIR="/proc/numba_xent/cache", PYTHONPATH=str(site))
    env.pop("XDG_CACHE_HOME", None)
    result = _run(USE_EVERYTHING, env, tmp_path, prefix)
    assert result.returncode == 0 and f"ok {site}" in result.stdout, result.stderr
    assert result.stderr.count(WARNING) == 1, result.stderr


def test_cache_entries_are_keyed_by_the_package_source():
    """A change anywhere in the package (say, an inlined helper in another file) must be a cache miss."""
    from numba_xent import _jit
    from numba_xent._kernels.sparse import sparse_rows

    kernel = sparse_rows(False, True)
    for dispatcher in (kernel.parallel, kernel.serial):
        assert isinstance(dispatcher._cache, _jit._PackageCache)
    assert _jit._PackageCache.fingerprint == _jit._source_fingerprint()
    assert len(_jit._PackageCache.fingerprint) == 64


WARM_CHECK = textwrap.dedent(
    """
    import numpy as np, numba_xent as nx
    from numba_xent._kernels.sparse import sparse_rows
    from numba_xent._kernels.softmax import softmax_rows
    rng = np.random.default_rng(1)
    for n_rows, n_classes in ((5, 10), (5, 1000), (20000, 10), (200, 1000)):
        x = rng.standard_normal((n_rows, n_classes)).astype(np.float32)
        y = rng.integers(0, n_classes, n_rows)
        nx.sparse_cross_entropy(x, y)
        nx.sparse_cross_entropy_with_grad(x, y, out=np.empty_like(x))
        nx.softmax(x)
    kernels = [sparse_rows(True, True), sparse_rows(False, True), softmax_rows]
    misses = sum(sum(d.stats.cache_misses.values()) for k in kernels for d in (k.serial, k.parallel))
    hits = sum(sum(d.stats.cache_hits.values()) for k in kernels for d in (k.serial, k.parallel))
    print("misses", misses, "hits", hits)
    """
)


def test_warmup_fills_the_cache_for_fresh_processes(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=ROOT)
    warm = subprocess.run(
        [sys.executable, "-m", "numba_xent", "warmup", "--quick"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    assert warm.returncode == 0 and "warmup: 32 calls" in warm.stdout, warm.stdout + warm.stderr
    check = _run(WARM_CHECK, env, tmp_path)
    assert check.returncode == 0, check.stderr
    assert "misses 0 hits 10" in check.stdout, check.stdout
