"""Processes: children made by fork, spawn and forkserver after the parent used the parallel kernels compute the
parent's results (same bits), and never hang or die.

Each scenario runs in a fresh interpreter (a subprocess with a timeout), as a user's script would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

POOL_SCRIPT = """
import multiprocessing as mp, sys
import numpy as np
import numba_xent as nx

x = np.random.default_rng(0).standard_normal((4000, 500)).astype(np.float32)
y = np.random.default_rng(1).integers(0, 500, 4000)

def work(seed):
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.5, 2.0, 500)
    loss, grad = nx.sparse_cross_entropy_with_grad(x, y, class_weight=w, label_smoothing=0.1)
    return float(loss), float(grad.sum(dtype=np.float64)), float(nx.sparse_cross_entropy(x[:7, :9], y[:7] % 9))

if __name__ == "__main__":
    expected = [work(seed) for seed in range(4)]    # the parent uses the parallel kernels first
    with mp.get_context(sys.argv[1]).Pool(2) as pool:
        got = pool.map_async(work, range(4)).get(timeout=120)
    assert got == expected, (got, expected)
    print("ok", sys.argv[1], len(got))
    import numba
    print("layer", numba.threading_layer())
"""


def _layer_env(layer):
    """The environment of a child that uses Numba's threading layer ``layer`` (None: Numba's own choice)."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if layer is None:
        return env
    env["NUMBA_THREADING_LAYER"] = layer
    if layer == "tbb":
        # pip's tbb puts libtbb.so.12 in <prefix>/lib, where Numba's tbbpool does not look by itself.
        env["LD_LIBRARY_PATH"] = os.path.join(sys.prefix, "lib") + os.pathsep + env.get("LD_LIBRARY_PATH", "")
        probe = subprocess.run([sys.executable, "-c", "import numba.np.ufunc.tbbpool"], env=env, capture_output=True)
        if probe.returncode != 0:
            pytest.skip("Numba's TBB layer is not loadable here (pip install tbb)")
    return env


@pytest.mark.parametrize("layer", [None, "omp", "workqueue", "tbb"])
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_pool_children_compute_the_parents_results(tmp_path, method, layer):
    script = tmp_path / "pool.py"
    script.write_text(textwrap.dedent(POOL_SCRIPT))
    env = _layer_env(layer)
    result = subprocess.run(
        [sys.executable, str(script), method], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok {method} 4" in result.stdout
    assert "Terminating" not in result.stderr
    if layer is not None:
        assert f"layer {layer}" in result.stdout


FORK_SCRIPT = """
import os, numpy as np, numba_xent as nx
from numba_xent import _launch
x = np.random.default_rng(0).standard_normal((4000, 500)).astype(np.float32)
y = np.zeros(4000, np.int64)
parent = nx.sparse_cross_entropy(x, y)           # a parallel launch in the parent
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    child = nx.sparse_cross_entropy(x, y)
    os.write(write, repr((float(child), _launch._in_forked_child)).encode())
    os._exit(0)
os.close(write)
_, status = os.waitpid(pid, 0)
child, serial = eval(os.read(read, 1000).decode())
assert status == 0 and serial is True and child == float(parent), (status, serial, child, parent)
print("ok")
"""


def test_bare_fork_after_a_parallel_call(tmp_path):
    script = tmp_path / "fork.py"
    script.write_text(textwrap.dedent(FORK_SCRIPT))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0 and "ok" in result.stdout, result.stdout + result.stderr


DATALOADER_SCRIPT = """
import numpy as np, torch
import numba_xent as nx
from numba_xent.torch import cross_entropy

logits = torch.from_numpy(np.random.default_rng(0).standard_normal((64, 4000, 5)).astype(np.float32))
labels = torch.from_numpy(np.random.default_rng(1).integers(0, 4000, (64, 5)))

class Losses(torch.utils.data.Dataset):
    def __len__(self):
        return 8
    def __getitem__(self, i):
        batch = logits[i * 8 : (i + 1) * 8]
        return cross_entropy(batch, labels[i * 8 : (i + 1) * 8]), torch.utils.data.get_worker_info().id

if __name__ == "__main__":
    expected = [float(cross_entropy(logits[i * 8 : (i + 1) * 8], labels[i * 8 : (i + 1) * 8])) for i in range(8)]
    nx.sparse_cross_entropy(np.zeros((4000, 500), np.float32), np.zeros(4000, np.int64))  # parallel, in the parent
    loader = torch.utils.data.DataLoader(Losses(), batch_size=None, num_workers=2, timeout=120)
    got = [(float(loss), worker) for loss, worker in loader]
    assert [loss for loss, _ in got] == expected, (got, expected)
    assert {worker for _, worker in got} == {0, 1}
    print("ok", torch.multiprocessing.get_start_method())
"""


def test_torch_dataloader_workers(tmp_path):
    pytest.importorskip("torch")
    script = tmp_path / "loader.py"
    script.write_text(textwrap.dedent(DATALOADER_SCRIPT))
    env = _layer_env(None)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok fork" in result.stdout
