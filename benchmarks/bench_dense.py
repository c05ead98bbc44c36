"""Dense layer with ReLU, A = relu(X @ W + b), float32: forward, and forward + backward.

Shapes are (m, n_in, n_out). "torch" is F.relu(F.linear(...)) on the CPU: forward under no_grad,
backward by autograd with dX, dW and db, as ``dense_backward`` returns.
"""
import functools

import numpy as np

from . import common
from .common import IMPLEMENTATIONS, dense_data, kernels, torch_or_skip

SHAPES = [(64, 784, 256), (256, 1024, 1024), (4096, 1024, 1024)]


def _fastnn(shape, impl):
    """(forward, forward_backward) closures for the "numpy" or "cpu" backend."""
    d = dense_data(*shape)

    def forward():
        return kernels.dense_forward(d.X, d.W, d.b, "relu", backend=impl)

    def forward_backward():
        A = forward()
        return kernels.dense_backward(d.dA, d.X, d.W, A, "relu", backend=impl)

    return forward, forward_backward


def _torch(shape):
    torch = torch_or_skip()
    F = torch.nn.functional
    d = dense_data(*shape)
    X = torch.from_numpy(d.X).requires_grad_()
    W = torch.from_numpy(np.ascontiguousarray(d.W.T)).requires_grad_()  # torch: (n_out, n_in)
    b = torch.from_numpy(d.b).requires_grad_()
    dA = torch.from_numpy(d.dA)

    def forward():
        with torch.no_grad():
            return F.relu(F.linear(X, W, b))

    def forward_backward():
        X.grad = W.grad = b.grad = None
        F.relu(F.linear(X, W, b)).backward(dA)

    return forward, forward_backward


def _closures(shape, impl):
    return _torch(shape) if impl == "torch" else _fastnn(shape, impl)


class Dense(common.ForwardBackwardTimes):
    """Time of a dense ReLU layer's forward, and of forward + backward."""
    params = [SHAPES, IMPLEMENTATIONS]
    closures = staticmethod(_closures)


class DenseSpeedup(common.ForwardBackwardSpeedup):
    params = [SHAPES]
    closures = staticmethod(_fastnn)


#: A serial-path and a parallel-path shape (with more than one Numba thread) for compile timing.
COMPILE_SHAPES = [(16, 32, 16), (256, 256, 256)]


def compile_cases():
    """Per cpu kernel, the calls whose first run compiles it (serial and parallel paths)."""
    cases = {"dense_forward": [], "dense_backward": []}
    for shape in COMPILE_SHAPES:
        d = dense_data(*shape)
        A = kernels.dense_forward(d.X, d.W, d.b, "relu", backend="numpy")
        cases["dense_forward"].append(
            functools.partial(kernels.dense_forward, d.X, d.W, d.b, "relu", backend="cpu"))
        cases["dense_backward"].append(
            functools.partial(kernels.dense_backward, d.dA, d.X, d.W, A, "relu", backend="cpu"))
    return cases


class DenseCompile(common.CompileTimes):
    params = [["dense_forward", "dense_backward", "total"]]

    def setup_cache(self):
        return common.compile_and_cached_seconds(__name__)
