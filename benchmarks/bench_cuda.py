"""CUDA kernels on a real GPU: fastnn against CuPy and PyTorch CUDA (where importable), on float32
arrays already on the device, at the issue's large shapes (the cases of ``fastnn.bench_cuda``).

``setup()`` raises NotImplementedError (asv's skip) when there is no real GPU: under Numba's CUDA
simulator (``numba.config.ENABLE_CUDASIM``), or when ``numba.cuda.is_available()`` is false (no
driver, no device, no numba-cuda); and for a library that is not installed with CUDA support.
Each timed call ends with a device synchronization.
"""
import functools

from . import common  # noqa: F401  (this checkout's fastnn on sys.path, threads pinned)

from fastnn import bench_cuda

CASES = {
    "dense relu fwd+bwd 4096x1024x1024": lambda libs: bench_cuda.dense_case(4096, 1024, 1024, libs),
    "batchnorm fwd+bwd 65536x256": lambda libs: bench_cuda.batchnorm_case(65536, 256, libs),
    "softmax-CE fwd+bwd 4096x1000": lambda libs: bench_cuda.cross_entropy_case(4096, 1000, libs),
    "softmax 4096x1000": lambda libs: bench_cuda.softmax_case(4096, 1000, libs),
    "adam update 4M": lambda libs: bench_cuda.adam_case(4_000_000, libs),
    "dropout fwd 4096x1024": lambda libs: bench_cuda.dropout_case(4096, 1024, libs),
}
IMPLEMENTATIONS = ["fastnn", "cupy", "torch"]


def gpu_or_skip():
    """Raise NotImplementedError unless a real CUDA GPU can run the kernels."""
    import numba
    from numba import cuda

    if numba.config.ENABLE_CUDASIM:
        raise NotImplementedError("the CUDA simulator is not a GPU to time")
    if not cuda.is_available():
        raise NotImplementedError("no usable CUDA GPU (driver, device or numba-cuda missing)")


@functools.lru_cache(maxsize=1)
def _libraries():
    return bench_cuda.libraries()


@functools.lru_cache(maxsize=1)
def _case(kernel):
    return CASES[kernel](_libraries())


class CudaKernels:
    """Seconds per call, synchronized, of each kernel in each implementation."""
    params = [list(CASES), IMPLEMENTATIONS]
    param_names = ["kernel", "implementation"]
    repeat = (2, 10, 2.0)
    timeout = 300

    def setup(self, kernel, impl):
        gpu_or_skip()
        case = _case(kernel)
        self.fn = case.fastnn if impl == "fastnn" else case.others.get(impl)
        if self.fn is None:
            raise NotImplementedError(f"{impl} is not installed with CUDA support")
        self.time_call(kernel, impl)  # compiles fastnn's kernels outside the timing

    def time_call(self, kernel, impl):
        self.fn()
        bench_cuda.synchronize(_libraries())


class CudaCopyBandwidth:
    """This GPU's device-to-device copy bandwidth: the limit of the memory-bound kernels."""
    timeout = 300

    def setup(self):
        gpu_or_skip()

    def track_copy_bandwidth(self):
        return bench_cuda.copy_bandwidth(_libraries())
    track_copy_bandwidth.unit = "GB/s"


class CudaSgemm:
    """cuBLAS sgemm at 4096^3 with TF32 off (through PyTorch or CuPy): the matmul limit."""
    timeout = 300

    def setup(self):
        gpu_or_skip()
        if not _libraries():
            raise NotImplementedError("neither PyTorch nor CuPy with CUDA is installed")

    def track_sgemm(self):
        return bench_cuda.sgemm_gflops(_libraries())
    track_sgemm.unit = "GFLOP/s"
