"""Elementwise math that LLVM can vectorize, for use inside Numba kernels.

The C library's ``expf``/``tanhf`` are opaque calls that stop loop vectorization, which costs 4-5x
in softmax here. For float32, ``exp``, ``tanh`` and ``sigmoid`` below are polynomial versions
(Cephes' ``expf``/``tanhf`` coefficients; measured within 5 ulp) made of arithmetic and bit
operations only, and ``log1p_unit`` (log(1 + x) for x in [0, 1], softplus's) a short series.
Float32 ``exp`` flushes results below the normal range (x < -87.3) to 0 and saturates at about
2.4e38 (x > 88.4) instead of returning inf. For float64 they call the C library, so float64
results stay reference-accurate.

``maximum`` is LLVM's ``maxnum`` (the non-NaN operand wins), whose reductions vectorize where a
compare-and-select does not; kernels count NaN/inf separately with ``isfinite`` below, a compare
that the fast-math flags in ``fastnn.config`` cannot fold away.
"""
import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload, register_jitable

_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_EXP_MAX = np.float32(88.37626)   # exp overflows float32 above
_EXP_MIN = np.float32(-87.33654)  # exp is denormal below


@intrinsic
def _float32_from_bits(typingctx, bits):
    """Reinterpret an int32 bit pattern as float32 (a no-op cast LLVM vectorizes)."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@intrinsic
def maximum(typingctx, a, b):
    """max(a, b) of two floats of one type; NaN loses to a number (LLVM ``maxnum``)."""
    if a != b or not isinstance(a, types.Float):
        return None

    def codegen(context, builder, sig, args):
        fty = args[0].type
        fnty = ir.FunctionType(fty, [fty, fty])
        fn = builder.module.declare_intrinsic("llvm.maxnum", [fty], fnty)
        return builder.call(fn, args)
    return a(a, b), codegen


@intrinsic
def isfinite(typingctx, x):
    """x is neither NaN nor +-inf: |x| < inf as an ordered compare. (Numba's ``math.isfinite``
    tests x - x, which the ``reassoc`` flag lets LLVM fold to 0 when x is computed in the loop.)"""
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, sig, args):
        fty = args[0].type
        fabs = builder.module.declare_intrinsic("llvm.fabs", [fty], ir.FunctionType(fty, [fty]))
        return builder.fcmp_ordered("<", builder.call(fabs, args), ir.Constant(fty, float("inf")))
    return types.boolean(x), codegen


#: Column sums over rows run in the data's dtype over chunks of this many rows, each chunk's sums
#: then folded into float64 accumulators: 2-3.5x faster than float64 throughout (batch norm's
#: statistics, the dense bias gradient), with float64's accuracy across chunks.
CHUNK_ROWS = 16


@register_jitable
def nonfinite(row):
    """1 if a value of the 1-D array ``row`` is NaN or inf, else 0. Kernels add these up per row
    or block into their "bad" count (0: everything finite) and run it as a loop of its own over a
    row still in cache (merged into a loop that also computes, it stops that loop vectorizing).
    One multiply-add per value: the sum of x * 0 is 0 while every x is finite and NaN once one
    is NaN or inf (the fast-math flags of ``fastnn.config`` keep x * 0); 2.7x faster on float32
    than counting with ``isfinite``."""
    zero = row.dtype.type(0)
    total = zero
    for j in range(row.shape[0]):
        total += row[j] * zero
    return 0 if total == zero else 1


@register_jitable
def _exp_f32(x):
    # e^x = 2^n * e^r with n = round(x / ln 2), |r| <= ln(2) / 2; x is clamped to the normal range
    # first and selects replace branches, so the loop vectorizes.
    xc = min(max(x, _EXP_MIN), _EXP_MAX)
    n = np.floor(xc * _LOG2E + np.float32(0.5))
    r = xc - n * _LN2_HI - n * _LN2_LO
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * r * r + r + np.float32(1.0)
    y = p * _float32_from_bits((np.int32(n) + np.int32(127)) << np.int32(23))
    return y if x >= _EXP_MIN else np.float32(0.0)


@register_jitable
def _tanh_f32(x):
    ax = abs(x)
    z = x * x
    small = ((((np.float32(-5.70498872745e-3) * z + np.float32(2.06390887954e-2)) * z
               - np.float32(5.37397155531e-2)) * z + np.float32(1.33314422036e-1)) * z
             - np.float32(3.33332819422e-1)) * z * x + x
    big = np.float32(1.0) - np.float32(2.0) / (_exp_f32(np.float32(2.0) * ax) + np.float32(1.0))
    big = big if x >= 0 else -big
    return small if ax < np.float32(0.625) else big


@register_jitable
def _log1p_unit_f32(x):
    # log(1 + x) = 2 atanh(s) with s = x / (2 + x) in [0, 1/3] for x in [0, 1]: the odd series
    # 2 (s + s^3/3 + ... + s^15/15) leaves out less than 2e-9 of the value, and is exact to
    # rounding as x -> 0 (where log(1 + x) in float32 would lose x).
    s = x / (np.float32(2.0) + x)
    s2 = s * s
    p = np.float32(1.0 / 15.0)
    p = p * s2 + np.float32(1.0 / 13.0)
    p = p * s2 + np.float32(1.0 / 11.0)
    p = p * s2 + np.float32(1.0 / 9.0)
    p = p * s2 + np.float32(1.0 / 7.0)
    p = p * s2 + np.float32(1.0 / 5.0)
    p = p * s2 + np.float32(1.0 / 3.0)
    p = p * s2 + np.float32(1.0)
    return np.float32(2.0) * s * p


def exp(x):
    """e**x, vectorizable for float32."""
    return math.exp(x)


def tanh(x):
    """tanh(x), vectorizable for float32."""
    return math.tanh(x)


def sigmoid(x):
    """1 / (1 + e**-x), vectorizable for float32."""
    return 1.0 / (1.0 + math.exp(-x))


def log1p_unit(x):
    """log(1 + x) for 0 <= x <= 1 (softplus's log1p(exp(-|z|))), vectorizable for float32."""
    return math.log1p(x)


@overload(exp)
def _exp_overload(x):
    if x == types.float32:
        return lambda x: _exp_f32(x)
    return lambda x: math.exp(x)


@overload(tanh)
def _tanh_overload(x):
    if x == types.float32:
        return lambda x: _tanh_f32(x)
    return lambda x: math.tanh(x)


@overload(sigmoid)
def _sigmoid_overload(x):
    if x == types.float32:
        return lambda x: np.float32(1.0) / (np.float32(1.0) + _exp_f32(-x))
    return lambda x: 1.0 / (1.0 + math.exp(-x))


@overload(log1p_unit)
def _log1p_unit_overload(x):
    if x == types.float32:
        return lambda x: _log1p_unit_f32(x)
    return lambda x: math.log1p(x)
