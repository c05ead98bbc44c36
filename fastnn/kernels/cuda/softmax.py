"""Softmax, log-softmax, hardmax and fused softmax cross-entropy on the GPU, rows in parallel.

A block of ``CUDA_SOFTMAX_THREADS`` threads takes several rows at a time, each row shared by a
group of G = min(``CUDA_SOFTMAX_ROW_THREADS``, C rounded up to a power of two) threads (a warp
per row by default). Per row, in two reads of it:
1. each thread runs an online max / sum of exponentials over its columns j = lane, lane + G, ...
   (sum rescaled when the max grows) and remembers where its max was first met; the group then
   combines those in a shared-memory tree (float64): row max M, S = sum_j exp(z_j - M), argmax
   (the first on ties) and, for target rows Y, sum_j Y_j and sum_j Y_j z_j;
2. each thread writes its columns of the output.
Cross-entropy sums the row losses per block, and the last block to finish sums the blocks' sums
(``_math.grid_sum``): the loss is reduced on the device, in a fixed order, in the same launch,
into the call's record; ``count_correct`` sums the rows whose argmax is the label the same way. A
class label outside [0, C) is counted (the call raises ValueError), never read past the row. The
order z - M - log(S) keeps logits of 1e4 finite. Z: (m, C).
"""
import functools
import math

import numpy as np
from numba import cuda, float64, int32

from fastnn.kernels.cuda import _scratch
from fastnn.kernels.cuda._launch import setting
from fastnn.kernels.cuda._math import add_count, grid_sum, nonfinite
from fastnn.kernels.cuda._scratch import BAD_LABELS
from fastnn.kernels.cuda._transfer import DeviceCall

#: What the row kernel writes; the modes from CE_LABELS on also sum a value per row (the loss, or
#: 1 for a row whose argmax is its label) into per-block sums.
SOFTMAX, LOG_SOFTMAX, HARDMAX, CE_LABELS, CE_ROWS, CORRECT = range(6)


@cuda.jit(device=True)
def _fold(row_max, row_sum, row_arg, y_sum, yz_sum, t, u):
    """Fold thread u's partial row statistics into thread t's (shared-memory slots). A thread
    that saw no column (C < G, or a row past the end) has max -inf and sum 0, and is skipped."""
    y_sum[t] += y_sum[u]
    yz_sum[t] += yz_sum[u]
    s_u = row_sum[u]
    if s_u == 0.0:
        return
    m_t, m_u, s_t = row_max[t], row_max[u], row_sum[t]
    if m_u > m_t or (m_u == m_t and row_arg[u] < row_arg[t]):
        row_sum[t] = s_t * math.exp(m_t - m_u) + s_u
        row_max[t] = m_u
        row_arg[t] = row_arg[u]
    else:
        row_sum[t] = s_t + s_u * math.exp(m_u - m_t)


@functools.lru_cache(maxsize=None)
def _kernel(threads):
    """The row kernel for blocks of ``threads`` threads (compile-time shared-memory sizes).
    Its sums (modes from CE_LABELS on) go to partial[block], and the last block writes their
    total to result[0]; tickets: ``last_block``'s counter, zero between launches."""

    @cuda.jit
    def kernel(mode, Z, labels, Y, out, group, inv_m, partial, tickets, result, bad):
        row_max = cuda.shared.array(threads, float64)
        row_sum = cuda.shared.array(threads, float64)
        row_arg = cuda.shared.array(threads, int32)
        y_sum = cuda.shared.array(threads, float64)
        yz_sum = cuda.shared.array(threads, float64)
        tid = cuda.threadIdx.x
        lane = tid % group
        lead = tid - lane  # the group's first thread, where its row statistics end up
        rows = threads // group
        m, n_cols = Z.shape
        zero, one = Z.dtype.type(0), Z.dtype.type(1)
        values, count = 0.0, 0  # this thread's share of the per-row values (CE_LABELS on)
        for first in range(cuda.blockIdx.x * rows, m, cuda.gridDim.x * rows):
            i = first + tid // group
            mx, s, arg, ys, yz = Z.dtype.type(-math.inf), zero, n_cols, zero, zero
            if i < m:
                for j in range(lane, n_cols, group):
                    z = Z[i, j]
                    count += nonfinite(z)
                    if z > mx:
                        s = s * math.exp(mx - z) + one
                        mx, arg = z, j
                    else:
                        s += math.exp(z - mx)
                    if mode == CE_ROWS:
                        y = Y[i, j]
                        count += nonfinite(y)
                        ys += y
                        yz += y * z
            row_max[tid], row_sum[tid], row_arg[tid] = mx, s, arg
            y_sum[tid], yz_sum[tid] = ys, yz
            cuda.syncthreads()
            step = group // 2
            while step > 0:
                if lane < step:
                    _fold(row_max, row_sum, row_arg, y_sum, yz_sum, tid, tid + step)
                cuda.syncthreads()
                step //= 2
            big, total, best = row_max[lead], row_sum[lead], row_arg[lead]
            y_total, yz_total = y_sum[lead], yz_sum[lead]
            cuda.syncthreads()  # all have read the statistics before the next rows overwrite them
            label = -1
            if i < m and (mode == CE_LABELS or mode == CORRECT):
                label = labels[i]
                if label < 0 or label >= n_cols:
                    if lane == 0:
                        add_count(bad, 1, BAD_LABELS)
                    label = -1
            if i < m and mode == CORRECT:
                if lane == 0 and best == label:
                    values += 1.0
            elif i < m:
                shift = Z.dtype.type(big)
                log_total = math.log(total)
                scale = Z.dtype.type(1.0 / total)
                if mode == CE_LABELS:
                    scale *= inv_m
                    if lane == 0 and label >= 0:
                        values += big + log_total - float64(Z[i, label])
                elif mode == CE_ROWS:
                    scale = Z.dtype.type(y_total / total) * inv_m
                    if lane == 0:
                        values += y_total * (big + log_total) - yz_total
                for j in range(lane, n_cols, group):
                    z = Z[i, j]
                    if mode == LOG_SOFTMAX:
                        v = (z - shift) - Z.dtype.type(log_total)
                        count += nonfinite(v)  # below the dtype's range (z - max overflowed)
                        out[i, j] = v
                    elif mode == HARDMAX:
                        out[i, j] = one if j == best else zero
                    elif mode == CE_LABELS:
                        p = math.exp(z - shift) * scale
                        out[i, j] = p - inv_m if j == label else p
                    elif mode == CE_ROWS:
                        out[i, j] = math.exp(z - shift) * scale - Y[i, j] * inv_m
                    else:
                        out[i, j] = math.exp(z - shift) * scale
        add_count(bad, count)
        if mode >= CE_LABELS:  # the sum of the row values over the rows, in the last block
            grid_sum(values, row_sum, partial, tickets, row_arg, result)

    return kernel


def _run(mode, call, Z, out, labels=None, Y=None):
    """Launch the row kernel on device arrays; the modes from CE_LABELS on store the sum of their
    row values (the losses, or the correct rows) in the call's first value."""
    threads = setting("CUDA_SOFTMAX_THREADS", power_of_two=True)
    group = min(setting("CUDA_SOFTMAX_ROW_THREADS", power_of_two=True), threads,
                1 << (Z.shape[1] - 1).bit_length())
    rows = threads // group
    blocks = max(1, min(-(-Z.shape[0] // rows), setting("CUDA_MAX_BLOCKS")))
    partial = _scratch.scratch("softmax partial sums", (blocks,), np.float64)
    tickets = _scratch.zeros("softmax tickets", (1,), np.int32)
    labels = _scratch.scratch("no labels", (0,), np.int64) if labels is None else labels
    Y = Z if Y is None else Y
    result = partial if call.values_out is None else call.values_out  # (unused: partial)
    inv_m = Z.dtype.type(1.0 / Z.shape[0])
    _kernel(threads)[blocks, threads](mode, Z, labels, Y, out, group, inv_m, partial, tickets,
                                      result, call.bad)


def _rowwise(mode, Z, out):
    call = DeviceCall(Z, out)
    Zd = call.read(Z, "Z")
    result = call.output(out, Zd.shape, Zd.dtype)
    _run(mode, call, Zd, result)
    return call.finish(result)


def softmax(Z, out=None):
    """See ``fastnn.kernels.softmax``."""
    return _rowwise(SOFTMAX, Z, out)


def log_softmax(Z, out=None):
    """See ``fastnn.kernels.log_softmax``."""
    return _rowwise(LOG_SOFTMAX, Z, out)


def hardmax(Z, out=None):
    """See ``fastnn.kernels.hardmax``."""
    return _rowwise(HARDMAX, Z, out)


def softmax_cross_entropy(Z, y, out=None):
    """See ``fastnn.kernels.softmax_cross_entropy``. Inside ``kernel_scope`` on device arrays the
    loss is a ``Pending`` number, read when the scope ends."""
    call = DeviceCall(Z, y, out, values=1)
    Zd, yd = call.read(Z, "Z"), call.read(y, "y")
    dZ = call.output(out, Zd.shape, Zd.dtype)
    if yd.ndim == 1:
        _run(CE_LABELS, call, Zd, dZ, labels=yd)
    else:
        _run(CE_ROWS, call, Zd, dZ, Y=yd)
    dZ = call.finish(dZ)
    return call.number(0, 1.0 / Zd.shape[0]), dZ


def count_correct(Z, y):
    """How many rows of Z (m, C) have their largest value (the first on ties) at the label y (m,),
    counted on the device; an int (``Pending`` inside ``kernel_scope`` on device arrays)."""
    call = DeviceCall(Z, y, values=1)
    Zd = call.read(Z, "Z")
    _run(CORRECT, call, Zd, Zd, labels=call.read(y, "y"))
    call.finish()
    n = call.number(0)
    return n if call.deferred else round(n)
