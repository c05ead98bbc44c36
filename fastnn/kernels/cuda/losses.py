"""Elementwise losses on the GPU, fused: sigmoid (binary) cross-entropy from logits and mean squared
error, one launch each.

Both are means over all N values of Z (m,) or (m, k), so the kernel sees Z, its targets and dZ as
flat arrays and runs a grid-stride loop over them (blocks of ``CUDA_THREADS_PER_BLOCK`` threads, a
power of two): each thread writes the gradient of its values and adds their loss terms to a
float64 sum, and ``_math.grid_sum`` adds them up (each block its threads' sums, the last block to
finish the blocks' sums): the loss is reduced on the device, in a fixed order,
in the same launch, into the call's record. NaN/inf in a gradient is counted; NaN/inf in an input
also makes the loss sum NaN or inf (max(z, 0) - z y meets inf - inf or inf * 0), which the record
reports as well.
"""
import functools
import math

import numpy as np
from numba import cuda, float64, int32

from fastnn.kernels.cuda import _scratch
from fastnn.kernels.cuda._launch import setting
from fastnn.kernels.cuda._math import add_count, grid_sum, nonfinite
from fastnn.kernels.cuda._transfer import DeviceCall, flat

SIGMOID_CE, SQUARED_ERROR, BINARY_CORRECT = range(3)


@functools.lru_cache(maxsize=None)
def _kernel(threads):
    """The loss kernel for blocks of ``threads`` threads (compile-time shared-memory sizes). The
    block sums go to partial[block], and the last block writes their total to result[0];
    tickets: ``last_block``'s counter, zero between launches. ``BINARY_CORRECT`` sums the values
    whose sign (z > 0) matches the label (y >= 0.5) instead, and writes nothing."""

    @cuda.jit
    def kernel(mode, Z, Y, out, scale, partial, tickets, result, bad):
        sums = cuda.shared.array(threads, float64)
        flag = cuda.shared.array(1, int32)
        zero, one = Z.dtype.type(0), Z.dtype.type(1)
        total, count = 0.0, 0
        for i in range(cuda.grid(1), Z.size, cuda.gridsize(1)):
            z, y = Z[i], Y[i]
            if mode == BINARY_CORRECT:  # (counts; writes nothing)
                if (z > zero) == (y >= Y.dtype.type(0.5)):
                    total += 1.0
                continue
            if mode == SIGMOID_CE:
                # e = exp(-|z|) <= 1 never overflows: sigmoid(z) = 1 / (1 + e) for z >= 0,
                # e / (1 + e) below; the term max(z, 0) - z y + log1p(e)
                e = math.exp(-abs(z))
                inv = one / (one + e)
                g = ((inv if z >= zero else e * inv) - y) * scale
                total += (float64(z if z > zero else zero) - float64(z) * float64(y)
                          + float64(math.log1p(e)))
            else:
                d = z - y
                g = d * scale
                total += float64(d) * float64(d)
            count += nonfinite(g)
            out[i] = g
        add_count(bad, count)
        grid_sum(total, sums, partial, tickets, flag, result)

    return kernel


def _launch(mode, call, Zd, Yd, dZ, factor):
    """Launch the kernel in ``mode`` on flat views of the call's device arrays; its sum goes to
    the call's first value."""
    n = Zd.size
    threads = setting("CUDA_THREADS_PER_BLOCK", power_of_two=True)
    blocks = max(1, min(-(-n // threads), setting("CUDA_MAX_BLOCKS")))
    partial = _scratch.scratch("loss partial sums", (blocks,), np.float64)
    tickets = _scratch.zeros("loss tickets", (1,), np.int32)
    scale = Zd.dtype.type(factor / n)
    _kernel(threads)[blocks, threads](mode, flat(Zd), flat(Yd), flat(dZ), scale, partial,
                                      tickets, call.values_out, call.bad)


def _loss(mode, Z, Y, out, factor, target):
    """Launch the loss kernel on the call's arrays: (mean loss, dZ) with dZ = the term's
    derivative * factor / N (``target``: the name of Y). Inside ``kernel_scope`` on device
    arrays the loss is a ``Pending`` number, read when the scope ends."""
    call = DeviceCall(Z, Y, out, values=1)
    Zd, Yd = call.read(Z, "Z"), call.read(Y, target)
    dZ = call.output(out, Zd.shape, Zd.dtype)
    _launch(mode, call, Zd, Yd, dZ, factor)
    dZ = call.finish(dZ)
    return call.number(0, 1.0 / Zd.size), dZ


def sigmoid_cross_entropy(Z, y, out=None):
    """See ``fastnn.kernels.sigmoid_cross_entropy``. Inside ``kernel_scope`` on device arrays the
    loss is a ``Pending`` number, read when the scope ends."""
    return _loss(SIGMOID_CE, Z, y, out, 1.0, "y")


def mean_squared_error(Z, Y, out=None):
    """See ``fastnn.kernels.mean_squared_error``. Inside ``kernel_scope`` on device arrays the
    loss is a ``Pending`` number, read when the scope ends."""
    return _loss(SQUARED_ERROR, Z, Y, out, 2.0, "Y")


def count_binary_correct(Z, Y):
    """How many values of Z (m,) or (m, k) fall on their target's side: z > 0 where y >= 0.5,
    z <= 0 elsewhere (binary and multi-label accuracy), counted on the device; an int
    (``Pending`` inside ``kernel_scope`` on device arrays)."""
    call = DeviceCall(Z, Y, values=1)
    Zd, Yd = call.read(Z, "Z"), call.read(Y, "Y")
    _launch(BINARY_CORRECT, call, Zd, Yd, Zd, 0.0)
    call.finish()
    n = call.number(0)
    return n if call.deferred else round(n)
