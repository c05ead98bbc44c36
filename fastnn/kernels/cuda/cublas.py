"""Matrix products from cuBLAS, through CuPy's bindings, on Numba device arrays (no copy).

``fastnn.config.CUDA_GEMM`` chooses: "auto" uses cuBLAS when ``cupy`` imports and a real GPU runs
the kernels (not Numba's simulator, which cannot run a library), "cublas" requires it (else a
RuntimeError says why not), "numba" never uses it. Each host thread gets its own cuBLAS handle;
cuBLAS runs on CuPy's current stream, the legacy default stream unless CuPy was told otherwise,
as Numba's launches do, so the product is ordered between the kernels around it.

Row-major C (m, n) = op(A) (m, k) @ op(B) (k, n) is column-major C^T = op(B)^T @ op(A)^T: cuBLAS
gets B first and A second, each with its own row length as leading dimension, transposed when
the row-major operand is. ``fastnn.config.CUDA_ALLOW_TF32`` sets the handle's math mode (TF32
tensor-op math for float32, or cuBLAS's default full-precision math).
"""
import functools
import threading

import numpy as np

from fastnn import config
from fastnn.kernels.cuda._device import is_simulator

_OP_N, _OP_T = 0, 1  # cublasOperation_t
_DEFAULT_MATH, _TF32_MATH = 0, 3  # cublasMath_t: CUBLAS_DEFAULT_MATH, CUBLAS_TF32_TENSOR_OP_MATH
#: alpha = 1, beta = 0 on the host (cuBLAS's default pointer mode), per dtype
_SCALARS = {np.dtype(t): (np.ones(1, t), np.zeros(1, t)) for t in (np.float32, np.float64)}
_local = threading.local()


@functools.lru_cache(maxsize=None)
def _bindings():
    """CuPy's cuBLAS module, or the reason it cannot be imported (a string)."""
    try:
        from cupy_backends.cuda.libs import cublas
    except Exception as error:  # not installed, or no CUDA runtime for it
        return f"CuPy's cuBLAS bindings do not import ({type(error).__name__}: {error})"
    return cublas


def in_use():
    """Whether the dense products go to cuBLAS now (``config.CUDA_GEMM``); raises RuntimeError
    when "cublas" is asked for and cannot run."""
    choice = config.CUDA_GEMM
    if choice not in ("auto", "cublas", "numba"):
        raise ValueError(f'fastnn.config.CUDA_GEMM must be "auto", "cublas" or "numba", got '
                         f"{choice!r}")
    if choice == "numba":
        return False
    reason = "Numba's CUDA simulator cannot run cuBLAS" if is_simulator() else None
    if reason is None and isinstance(_bindings(), str):
        reason = _bindings() + '; install CuPy for your CUDA driver: pip install "cupy-cuda12x"'
    if reason is not None and choice == "cublas":
        raise RuntimeError(f'fastnn.config.CUDA_GEMM = "cublas": {reason} (set it to "auto" or '
                           '"numba" for the tiled @cuda.jit product)')
    return reason is None


def _handle(cublas):
    handle = getattr(_local, "handle", None)
    if handle is None:
        handle = _local.handle = cublas.create()
    return handle


def _pointer(d):
    return d.__cuda_array_interface__["data"][0]


def matmul(A, B, C, trans_a=False, trans_b=False):
    """C = op(A) @ op(B) on C-contiguous device arrays of one dtype (float32 or float64);
    op(A): (m, k), op(B): (k, n), C: (m, n)."""
    cublas = _bindings()
    handle = _handle(cublas)
    dtype = np.dtype(C.dtype)
    tf32 = config.CUDA_ALLOW_TF32 and dtype == np.float32
    cublas.setMathMode(handle, _TF32_MATH if tf32 else _DEFAULT_MATH)
    m, n = C.shape
    k = A.shape[0] if trans_a else A.shape[1]
    one, zero = _SCALARS[dtype]
    gemm = cublas.sgemm if dtype == np.float32 else cublas.dgemm
    gemm(handle, _OP_T if trans_b else _OP_N, _OP_T if trans_a else _OP_N, n, m, k,
         one.ctypes.data, _pointer(B), B.shape[1], _pointer(A), A.shape[1],
         zero.ctypes.data, _pointer(C), n)
