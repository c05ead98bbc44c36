"""Inverted dropout on the GPU, with Numba's xoroshiro128+ random numbers.

``rate`` is the drop probability; each element is kept with probability keep = 1 - rate and the
kept ones are scaled by 1 / keep, so that E[Y] = X: Y = X * mask / keep, mask in {0, 1} (X's
dtype). Thread t draws from its own xoroshiro128+ state states[t] for elements t, t + T, ...
(T threads). Given an integer seed, a kernel seeds one state per thread from it with SplitMix64
(same seed and same ``fastnn.config`` launch sizes: same mask; no host work, so a training step
can pass a new seed each time); given a device array of states (from
``numba.cuda.random.create_xoroshiro128p_states``), they advance in place, so consecutive calls
draw new masks.
"""
import numbers
import warnings

import numpy as np
from numba import NumbaDeprecationWarning, cuda, uint32, uint64

with warnings.catch_warnings():  # the simulator's numba.cuda.random passes nopython=False to jit
    warnings.simplefilter("ignore", NumbaDeprecationWarning)
    from numba.cuda.random import xoroshiro128p_dtype, xoroshiro128p_uniform_float32

from fastnn.kernels.cuda._launch import setting, stride_grid
from fastnn.kernels.cuda._math import add_count, nonfinite
from fastnn.kernels.cuda._transfer import DeviceCall, flat, split_out

_GOLDEN = 0x9E3779B97F4A7C15  # SplitMix64's increment


@cuda.jit(device=True)
def _splitmix64(z):
    """SplitMix64's output function: a bijection of uint64 that mixes all the bits."""
    z = (z ^ (z >> uint32(30))) * uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> uint32(27))) * uint64(0x94D049BB133111EB)
    return z ^ (z >> uint32(31))


@cuda.jit
def _seed_states(states, seed):
    """states[t] = outputs 2t + 1 and 2t + 2 of the SplitMix64 sequence started at ``seed`` (the
    seeding that xoroshiro128+'s authors recommend): distinct, well-mixed states."""
    for t in range(cuda.grid(1), states.size, cuda.gridsize(1)):
        z = seed + uint64(2 * t + 1) * uint64(_GOLDEN)
        states[t]["s0"] = _splitmix64(z)
        states[t]["s1"] = _splitmix64(z + uint64(_GOLDEN))


@cuda.jit
def _dropout_kernel(X, states, n_threads, keep, scale, Y, mask, bad):
    """mask_i = 1[u_i < keep] with u_i uniform in [0, 1); Y = X * mask * scale (flat arrays)."""
    t = cuda.grid(1)
    if t >= n_threads:
        return
    zero, one = X.dtype.type(0), X.dtype.type(1)
    count = 0
    for i in range(t, X.size, n_threads):
        x = X[i]
        count += nonfinite(x)
        kept = xoroshiro128p_uniform_float32(states, t) < keep
        mask[i] = one if kept else zero
        Y[i] = x * scale if kept else zero
    add_count(bad, count)


@cuda.jit
def _scale_by_mask_kernel(dY, mask, scale, dX, bad):
    """dX = dY * mask * scale (flat arrays); counts NaN/inf in dY."""
    count = 0
    for i in range(cuda.grid(1), dY.size, cuda.gridsize(1)):
        dy = dY[i]
        count += nonfinite(dy)
        dX[i] = dy * mask[i] * scale
    add_count(bad, count)


def _keep(rate):
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
    return 1.0 - rate


def dropout_forward(X, rate, seed_or_states, out=None):
    """Inverted dropout, the equation of the host version (``fastnn.kernels.cpu.dropout_forward``).

    X: any shape. seed_or_states: an integer seed, or a device array of xoroshiro128+ states (one
    per thread; they advance in place). ``out``: (Y, mask). Returns (Y, mask), both X's dtype."""
    keep = _keep(rate)
    out_Y, out_mask = split_out(out, 2)
    call = DeviceCall(X, out_Y, out_mask)
    Xd = call.read(X, "X")
    Y = call.output(out_Y, Xd.shape, Xd.dtype, "out[0] (Y)")
    mask = call.output(out_mask, Xd.shape, Xd.dtype, "out[1] (mask)")
    if isinstance(seed_or_states, numbers.Integral) and not isinstance(seed_or_states, bool):
        blocks, threads = stride_grid(Xd.size)
        states = cuda.device_array(blocks * threads, xoroshiro128p_dtype)
        _seed_states[blocks, threads](states, np.uint64(int(seed_or_states) % 2 ** 64))
    else:
        states = call.update(seed_or_states, "states")
    n_threads = min(states.size, Xd.size)
    threads = setting("CUDA_THREADS_PER_BLOCK")
    scale = np.dtype(Xd.dtype).type(1.0 / keep)
    _dropout_kernel[-(-n_threads // threads), threads](
        flat(Xd), states, n_threads, np.float32(keep), scale, flat(Y), flat(mask), call.bad)
    return call.finish(Y, mask)


def dropout_backward(dY, mask, rate, out=None):
    """dX = dY * mask / (1 - rate) with the mask of ``dropout_forward``. ``out``: dX."""
    keep = _keep(rate)
    call = DeviceCall(dY, mask, out)
    dYd, maskd = call.read(dY, "dY"), call.read(mask, "mask")
    dX = call.output(out, dYd.shape, dYd.dtype)
    blocks, threads = stride_grid(dX.size)
    scale = np.dtype(dYd.dtype).type(1.0 / keep)
    _scale_by_mask_kernel[blocks, threads](flat(dYd), flat(maskd), scale, flat(dX), call.bad)
    return call.finish(dX)
