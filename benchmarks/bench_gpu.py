"""fastnn's CUDA kernels on a real GPU against CuPy, PyTorch CUDA and JAX on the GPU (where
importable), on float32 arrays already on the device: the rows of ``python -m fastnn bench --cuda
--quick`` (``fastnn.bench.tables.table_cases(quick=True, gpu=True)``: each kernel at a training
step's batch-64 shapes and at large shapes, and the MLP training step at batch 64 and 4096), and
the card's limits.

``setup()`` raises NotImplementedError (asv's skip) when there is no real GPU: under Numba's CUDA
simulator (``numba.config.ENABLE_CUDASIM``), or when ``numba.cuda.is_available()`` is false (no
driver, no device, no numba-cuda); and for a library that is not installed with CUDA support.
Each timed call ends with a device synchronization.
"""
from fastnn.bench import machine, peers, tables

from . import common

CASES = {case.label: case for case in tables.table_cases(quick=True, gpu=True)}


def gpu_or_skip():
    """Raise NotImplementedError unless a real CUDA GPU can run the kernels."""
    import numba
    from numba import cuda

    if numba.config.ENABLE_CUDASIM:
        raise NotImplementedError("the CUDA simulator is not a GPU to time")
    if not cuda.is_available():
        raise NotImplementedError("no usable CUDA GPU (driver, device or numba-cuda missing)")


class CudaKernels(common.CaseTimes):
    """Seconds per call, synchronized, of each case in fastnn's "cuda" kernels and the peers."""
    params = [list(CASES), ["cuda", *peers.GPU_PEERS]]
    cases = CASES
    check = staticmethod(gpu_or_skip)
    sync = staticmethod(peers.synchronize)


class CudaCopyBandwidth:
    """This GPU's device-to-device copy bandwidth: the limit of the memory-bound kernels."""
    timeout = 300

    def setup(self):
        gpu_or_skip()

    def track_copy_bandwidth(self):
        return machine.copy_bandwidth(peers.synchronize)
    track_copy_bandwidth.unit = "GB/s"


class CudaSgemm:
    """cuBLAS sgemm at 4096^3 with TF32 off (through PyTorch or CuPy): the matmul limit."""
    timeout = 300

    def setup(self):
        gpu_or_skip()
        if not (peers.usable("torch-cuda") or peers.usable("cupy")):
            raise NotImplementedError("neither PyTorch nor CuPy with CUDA is installed")

    def track_sgemm(self):
        return machine.sgemm_gflops(peers.synchronize)
    track_sgemm.unit = "GFLOP/s"
