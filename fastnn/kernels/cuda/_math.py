"""Device functions shared by the CUDA kernels: activations, NaN/inf counting, block sums and
the last-block step of a one-launch grid reduction.

They keep the arrays' precision: ``zero`` and ``one`` come in typed by the calling kernel
(``A.dtype.type(0)``), since a bare literal would promote float32 arithmetic to float64.
"""
import math

from numba import cuda, float64

from fastnn.kernels.base import RELU, SIGMOID, TANH


@cuda.jit(device=True)
def nonfinite(x):
    """1 when x is NaN or +-inf, else 0."""
    return 0 if math.isfinite(x) else 1


@cuda.jit(device=True)
def add_count(bad, count, slot=0):
    """bad[slot] += count (a call's float64 record, ``_transfer.Record``), atomically, skipped
    when count is 0 (the common case)."""
    if count != 0:
        cuda.atomic.add(bad, slot, float64(count))


@cuda.jit(device=True)
def block_sum(shared, value, tid, threads):
    """The sum of ``value`` over a block's ``threads`` threads (a power of two; thread ``tid``),
    by a tree in the float64 shared array ``shared`` (a slot per thread): a fixed order. Every
    thread gets the sum."""
    cuda.syncthreads()  # (every thread has read what an earlier use left in ``shared``)
    shared[tid] = value
    cuda.syncthreads()
    step = threads // 2
    while step > 0:
        if tid < step:
            shared[tid] += shared[tid + step]
        cuda.syncthreads()
        step //= 2
    return shared[0]


@cuda.jit(device=True)
def last_block(tickets, slot, n_blocks, flag):
    """Whether this block is the last of the ``n_blocks`` sharing tickets[slot] to get here,
    in every thread (all must call it, after each stored its share of the block's partial
    results). The last sees every block's partial results and can finish a reduction in the same
    launch (CUDA's threadFenceReduction). tickets[slot] counts the blocks done and is left at 0 by
    the last; ``flag``: a shared int32 array (slot 0 is used)."""
    cuda.threadfence()  # (this thread's stores are visible to the grid before the ticket)
    cuda.syncthreads()
    if cuda.threadIdx.x == 0 and cuda.threadIdx.y == 0:
        last = cuda.atomic.add(tickets, slot, 1) == n_blocks - 1
        if last:
            tickets[slot] = 0
        flag[0] = 1 if last else 0
    cuda.syncthreads()
    return flag[0] == 1


@cuda.jit(device=True)
def grid_sum(value, shared, partial, tickets, flag, result):
    """The sum of ``value`` over every thread of a 1-D grid of a power-of-two block size, stored
    in result[0] by the last block to finish (``block_sum`` per block into partial[blockIdx],
    then ``last_block`` adds the partial sums: a fixed order, one launch). ``shared``: a float64
    shared array of a slot per thread; ``tickets``: tickets[0] at 0; ``flag``: as
    ``last_block``'s. Every thread of the grid must call it."""
    tid, threads = cuda.threadIdx.x, cuda.blockDim.x
    block_total = block_sum(shared, value, tid, threads)
    if tid == 0:
        partial[cuda.blockIdx.x] = block_total
    if last_block(tickets, 0, cuda.gridDim.x, flag):
        grand = 0.0
        for b in range(tid, cuda.gridDim.x, threads):
            grand += partial[b]
        grand = block_sum(shared, grand, tid, threads)
        if tid == 0:
            result[0] = grand


@cuda.jit(device=True)
def activate(z, act, zero, one):
    """g(z) for act in LINEAR, RELU (max(z, 0)), TANH, SIGMOID (1 / (1 + e^-z))."""
    if act == RELU:
        return z if z > zero else zero
    if act == TANH:
        return math.tanh(z)
    if act == SIGMOID:  # (exp of a negative argument only: no overflow, in the simulator too)
        if z >= zero:
            return one / (one + math.exp(-z))
        e = math.exp(z)
        return e / (one + e)
    return z


@cuda.jit(device=True)
def activation_grad(da, a, act, zero, one):
    """dz = da * g'(z) with g' from a = g(z): relu 1[a > 0], tanh 1 - a^2, sigmoid a (1 - a).
    relu keeps a NaN of da visible where the unit is off (zero * da)."""
    if act == RELU:
        return da if a > zero else zero * da
    if act == TANH:
        return da * (one - a * a)
    if act == SIGMOID:
        return da * (a * (one - a))
    return da
