"""Dense layer and activation kernels on the GPU.

Forward: A = g(X @ W + b), one tiled product with the bias and g fused into its epilogue.
Backward: dZ = dA * g'(Z) (g' from A) and db = column sums of dZ in one block-reduction pass (its
last pass writes db), then dX = dZ @ W.T and dW = X.T @ dZ as tiled products that read W and X
transposed in place. dZ is
dA itself for a linear layer, and is written over dA when that is allowed (``overwrite_dA``, or a
host dA, whose device copy is the kernel's own).
X: (m, n_in); W: (n_in, n_out); b, db: (n_out,); A, dA, dZ: (m, n_out).
"""
from numba import cuda

from fastnn.kernels.base import ACTIVATIONS, LINEAR, is_device_array
from fastnn.kernels.cuda import cublas
from fastnn.kernels.cuda._colsum import GRAD_Z, column_sums
from fastnn.kernels.cuda._gemm import gemm
from fastnn.kernels.cuda._launch import count_nonfinite, stride_grid
from fastnn.kernels.cuda._math import activate, activation_grad, add_count, nonfinite
from fastnn.kernels.cuda._transfer import DeviceCall, flat, split_out


@cuda.jit
def _activation_kernel(Z, A, act, bad):
    """A = g(Z) over flat arrays; counts NaN/inf in Z."""
    zero, one = Z.dtype.type(0), Z.dtype.type(1)
    count = 0
    for i in range(cuda.grid(1), Z.size, cuda.gridsize(1)):
        z = Z[i]
        count += nonfinite(z)
        A[i] = activate(z, act, zero, one)
    add_count(bad, count)


@cuda.jit
def _activation_grad_kernel(dA, A, dZ, act, bad):
    """dZ = dA * g'(Z) (g' from A) over flat arrays; counts NaN/inf in A and dZ."""
    zero, one = A.dtype.type(0), A.dtype.type(1)
    count = 0
    for i in range(cuda.grid(1), A.size, cuda.gridsize(1)):
        a = A[i]
        dz = activation_grad(dA[i], a, act, zero, one)
        dZ[i] = dz
        count += nonfinite(a) + nonfinite(dz)
    add_count(bad, count)


def _elementwise(kernel, inputs, activation, out):
    """Run a flat activation kernel over same-shaped ``inputs``; returns its (m, n) result."""
    call = DeviceCall(*inputs, out)
    devices = [call.read(a) for a in inputs]
    result = call.output(out, devices[0].shape, devices[0].dtype)
    blocks, threads = stride_grid(result.size)
    kernel[blocks, threads](*map(flat, devices), flat(result), _code(activation), call.bad)
    return call.finish(result)


def _code(activation):
    """The activation's code (None is linear)."""
    return ACTIVATIONS.index("linear" if activation is None else activation)


def activation_forward(Z, activation, out=None):
    """See ``fastnn.kernels.activation_forward``."""
    return _elementwise(_activation_kernel, (Z,), activation, out)


def activation_backward(dA, A, activation, out=None):
    """See ``fastnn.kernels.activation_backward``."""
    return _elementwise(_activation_grad_kernel, (dA, A), activation, out)


def dense_forward(X, W, b=None, activation="linear", out=None):
    """See ``fastnn.kernels.dense_forward``."""
    call = DeviceCall(X, W, b, out)
    Xd, Wd, bd = call.read(X, "X"), call.read(W, "W"), call.read(b, "b")
    A = call.output(out, (Xd.shape[0], Wd.shape[1]), Xd.dtype)
    gemm(Xd, Wd, A, call.bad, bias=bd, act=_code(activation))
    return call.finish(A)


def dense_backward(dA, X, W, A, activation="linear", input_grad=True, out=None,
                   overwrite_dA=False, bias_grad=True):
    """See ``fastnn.kernels.dense_backward``. ``overwrite_dA``: a device dA may be overwritten
    with dZ (saves a buffer)."""
    out_dX, out_dW, out_db = split_out(out, 3)
    call = DeviceCall(dA, X, W, A, out_dX, out_dW, out_db)
    dAd, Xd, Wd, Ad = (call.read(a, name) for a, name in ((dA, "dA"), (X, "X"), (W, "W"),
                                                          (A, "A")))
    (m, n_in), n_out, dtype = Xd.shape, Wd.shape[1], Xd.dtype
    act = _code(activation)
    reuse = act == LINEAR or overwrite_dA or not is_device_array(dA)
    dZ = dAd if reuse else cuda.device_array((m, n_out), dtype)
    db = None if not bias_grad else call.output(out_db, (n_out,), dtype, "out[2] (db)")
    if bias_grad or act != LINEAR:  # (a linear layer without a bias: dZ is dA, no sums)
        column_sums(GRAD_Z, Ad, call.bad, D=dAd, E=dZ, act=act,
                    out=None if db is None else db.reshape(1, n_out))
    dX = None
    dW = call.output(out_dW, (n_in, n_out), dtype, "out[1] (dW)")
    counted = not cublas.in_use()  # (the tiled kernel counts as it stores; else one pass)
    if input_grad:
        dX = call.output(out_dX, (m, n_in), dtype, "out[0] (dX)")
        gemm(dZ, Wd, dX, call.bad, trans_b=True, count=counted)
    gemm(Xd, dZ, dW, call.bad, trans_a=True, count=counted)
    if not (counted and input_grad):  # (W's NaN/inf reach no result without dX)
        count_nonfinite(call.bad, *(() if counted else (flat(dW),)),
                        flat(dX) if input_grad else flat(Wd))
    return call.finish(dX, dW, db)

