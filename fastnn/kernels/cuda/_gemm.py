"""Tiled matrix product C = op(A) @ op(B) (+ bias, then an activation), op(M) = M or M.T.

A block of THREADS_Y x THREADS_X threads (``fastnn.config.CUDA_GEMM_*``) computes a tile of
TM x TN outputs, TM = THREADS_Y * REGS_M and TN = THREADS_X * REGS_N. For each step of TILE_K
along the inner dimension the block copies a TM x TILE_K slice of op(A) and a TILE_K x TN slice
of op(B) into shared memory (zeros past the edges), then every thread accumulates its
REGS_M x REGS_N outputs in registers as outer products of REGS_M values of the op(A) slice and
REGS_N of the op(B) slice (register blocking: each shared value read feeds several products).
Thread (ty, tx) owns rows ty + r * THREADS_Y and columns tx + c * THREADS_X of the tile, so that
adjacent threads read adjacent shared-memory words and store adjacent columns of C.

Transposed operands are read in place, never copied: the tile loader walks the stored array
along its contiguous axis whichever way it is used. The epilogue adds the bias, counts NaN/inf in
the pre-activation values and applies the activation before the single store of C.

Where cuBLAS is in use (``cublas.in_use``: a real GPU with CuPy, ``fastnn.config.CUDA_GEMM``)
the product comes from it instead, and ``_epilogue`` then does the same in one elementwise pass
over C (or nothing, for a caller that counts NaN/inf itself: ``count=False``).
"""
import functools

import numpy as np
from numba import cuda, from_dtype

from fastnn.kernels.base import LINEAR
from fastnn.kernels.cuda import cublas
from fastnn.kernels.cuda._launch import setting, stride_grid
from fastnn.kernels.cuda._math import activate, add_count, nonfinite


@cuda.jit(device=True)
def _load_tile(S, M, trans, r0, k0, R, K, width, depth, tid, n_threads, zero):
    """S[kk, i] = N[r0 + i, k0 + kk] for i < width, kk < depth (zero outside N), where N (R, K)
    is M, or M.T when ``trans``. Consecutive threads take consecutive elements along M's rows
    (coalesced): along kk for N = M, along i for N = M.T."""
    for slot in range(tid, width * depth, n_threads):
        if trans:
            kk, i = slot // width, slot % width
        else:
            i, kk = slot // depth, slot % depth
        r, k = r0 + i, k0 + kk
        if r < R and k < K:
            S[kk, i] = M[k, r] if trans else M[r, k]
        else:
            S[kk, i] = zero


@functools.lru_cache(maxsize=None)
def _kernel(dtype, threads_x, threads_y, regs_m, regs_n, tile_k):
    """The product kernel for one dtype and tiling (compile-time array sizes)."""
    nb_type = from_dtype(np.dtype(dtype))
    tile_m, tile_n = threads_y * regs_m, threads_x * regs_n
    n_threads = threads_x * threads_y
    # +1 column: the loader's strided stores land in different shared-memory banks
    a_shape, b_shape = (tile_k, tile_m + 1), (tile_k, tile_n + 1)

    @cuda.jit
    def kernel(A, B, C, trans_a, trans_b, bias, has_bias, act, bad):
        As = cuda.shared.array(a_shape, nb_type)
        Bs = cuda.shared.array(b_shape, nb_type)
        acc = cuda.local.array((regs_m, regs_n), nb_type)
        a_reg = cuda.local.array(regs_m, nb_type)
        b_reg = cuda.local.array(regs_n, nb_type)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tid = ty * threads_x + tx
        m, n = C.shape
        k_total = A.shape[0] if trans_a else A.shape[1]
        row0, col0 = cuda.blockIdx.y * tile_m, cuda.blockIdx.x * tile_n
        zero, one = C.dtype.type(0), C.dtype.type(1)
        for r in range(regs_m):
            for c in range(regs_n):
                acc[r, c] = zero
        for k0 in range(0, k_total, tile_k):
            _load_tile(As, A, trans_a, row0, k0, m, k_total, tile_m, tile_k, tid, n_threads,
                       zero)
            # op(B)[k, j] = op(B).T[j, k]: load op(B).T, which is B.T unless B is transposed
            _load_tile(Bs, B, not trans_b, col0, k0, n, k_total, tile_n, tile_k, tid,
                       n_threads, zero)
            cuda.syncthreads()
            for kk in range(tile_k):
                for r in range(regs_m):
                    a_reg[r] = As[kk, ty + r * threads_y]
                for c in range(regs_n):
                    b_reg[c] = Bs[kk, tx + c * threads_x]
                for r in range(regs_m):
                    for c in range(regs_n):
                        acc[r, c] += a_reg[r] * b_reg[c]
            cuda.syncthreads()
        count = 0
        for r in range(regs_m):
            i = row0 + ty + r * threads_y
            for c in range(regs_n):
                j = col0 + tx + c * threads_x
                if i < m and j < n:
                    z = acc[r, c] + bias[j] if has_bias else acc[r, c]
                    count += nonfinite(z)
                    C[i, j] = activate(z, act, zero, one)
        add_count(bad, count)

    return kernel


@cuda.jit
def _epilogue(C, bias, has_bias, act, bad):
    """C = g(C + bias) in place (bias: (n,), per column), counting NaN/inf before g."""
    n = C.shape[1]
    zero, one = C.dtype.type(0), C.dtype.type(1)
    count = 0
    for k in range(cuda.grid(1), C.size, cuda.gridsize(1)):
        i, j = k // n, k % n
        z = C[i, j] + bias[j] if has_bias else C[i, j]
        count += nonfinite(z)
        C[i, j] = activate(z, act, zero, one)
    add_count(bad, count)


def gemm(A, B, C, bad, trans_a=False, trans_b=False, bias=None, act=LINEAR, count=True):
    """C = g(op(A) @ op(B) + bias) on device arrays; op(A): (m, k), op(B): (k, n), C: (m, n),
    bias: (n,) or None, g: activation code. ``bad`` counts NaN/inf in op(A) @ op(B) + bias
    (``count=False``: a linear product without bias whose caller counts them; cuBLAS then makes
    the whole call)."""
    has_bias = bias is not None
    bias = bias if has_bias else C[0]
    if cublas.in_use():
        cublas.matmul(A, B, C, trans_a, trans_b)
        if count or has_bias or act != LINEAR:
            blocks, threads = stride_grid(C.size)
            _epilogue[blocks, threads](C, bias, has_bias, act, bad)
        return
    threads_x, threads_y = setting("CUDA_GEMM_THREADS_X"), setting("CUDA_GEMM_THREADS_Y")
    regs_m, regs_n = setting("CUDA_GEMM_REGS_M"), setting("CUDA_GEMM_REGS_N")
    kernel = _kernel(np.dtype(C.dtype), threads_x, threads_y, regs_m, regs_n,
                     setting("CUDA_GEMM_TILE_K"))
    m, n = C.shape
    grid = (-(-n // (threads_x * regs_n)), -(-m // (threads_y * regs_m)))
    kernel[grid, (threads_x, threads_y)](A, B, C, trans_a, trans_b, bias, has_bias, act, bad)
