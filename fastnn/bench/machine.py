"""This machine's limits, measured at the start of a table: the rates fastnn's throughput is
compared with. The CPU: NumPy's float32 matmul (GFLOP/s) and a parallel triad (GB/s of DRAM).
The GPU: cuBLAS sgemm with TF32 off through PyTorch or CuPy (GFLOP/s), and a device-to-device
copy (GB/s of device memory). ``busy_core``: the load of ``bench --loaded``."""
import contextlib
import subprocess
import sys
import time
from typing import NamedTuple, Optional

import numba
import numpy as np

from fastnn.bench import peers
from fastnn.bench.timing import median_seconds


class Limits(NamedTuple):
    """GFLOP/s of the matrix products (None: not measurable here) and GB/s of memory."""
    gflops: Optional[float]
    gbs: float


@numba.njit(parallel=True, cache=True)
def _triad(a, b, c, s):
    for i in numba.prange(a.shape[0]):
        a[i] = b[i] + s * c[i]


def cpu_limits():
    """NumPy's float32 matmul at 2048^3, and a parallel triad a = b + s * c over 3 x 512 MB."""
    A = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    A @ A
    gflops = 2 * 2048 ** 3 / median_seconds(lambda: A @ A, budget=1.0) / 1e9
    n = 1 << 27
    a, b, c = np.zeros(n, np.float32), np.ones(n, np.float32), np.ones(n, np.float32)
    _triad(a, b, c, np.float32(2))
    time.sleep(0.3)  # (BLAS threads idle again)
    gbs = 3 * 4 * n / median_seconds(lambda: _triad(a, b, c, np.float32(2)), budget=1.0) / 1e9
    return Limits(gflops, gbs)


def gpu_limits(sync):
    """``Limits`` of this GPU (``sync()`` waits for it)."""
    return Limits(sgemm_gflops(sync), copy_bandwidth(sync))


def copy_bandwidth(sync, nbytes=1 << 29):
    """GB/s of a device-to-device copy of ``nbytes`` (read + write counted)."""
    from numba import cuda

    src = cuda.device_array(nbytes // 4, np.float32)
    dst = cuda.device_array_like(src)
    dst.copy_to_device(src)
    return 2 * nbytes / median_seconds(lambda: dst.copy_to_device(src), 0.5, sync=sync) / 1e9


def sgemm_gflops(sync, n=4096):
    """GFLOP/s of cuBLAS sgemm at n^3 through PyTorch (whose matmul leaves TF32 off by default)
    or CuPy (which uses TF32 only when CUPY_TF32=1 is set); None when neither is usable."""
    if peers.usable("torch-cuda"):
        a = peers.library("torch-cuda").randn(n, n, device="cuda")
    elif peers.usable("cupy"):
        a = peers.library("cupy").random.standard_normal((n, n), dtype=np.float32)
    else:
        return None
    a @ a
    return 2.0 * n ** 3 / median_seconds(lambda: a @ a, 0.5, sync=sync) / 1e9


def gpu_name():
    """The current GPU's name."""
    from numba import cuda

    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else name


@contextlib.contextmanager
def busy_core():
    """Keep one core busy while the block runs: a separate Python process spinning in a loop (a
    second job on a shared machine), stopped when the block ends."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.2)  # (running before the first measurement)
        yield
    finally:
        spinner.kill()
        spinner.wait()
