"""Dense layer with ReLU, A = relu(X @ W + b), float32: forward, and forward + backward.

Shapes are (m, n_in, n_out). "torch" is F.relu(F.linear(...)) on the CPU: forward under no_grad,
backward by autograd with dX, dW and db, as ``dense_backward`` returns.
"""
import functools

import numpy as np

from .common import (IMPLEMENTATIONS, dense_data, first_call_seconds, kernels, speedup,
                     torch_or_skip, warm)

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


class Dense:
    """Time of a dense ReLU layer's forward, and of forward + backward."""
    params = [SHAPES, IMPLEMENTATIONS]
    param_names = ["shape", "implementation"]
    repeat = (2, 10, 2.0)
    timeout = 180

    def setup(self, shape, impl):
        fns = _torch(shape) if impl == "torch" else _fastnn(shape, impl)
        self.forward, self.forward_backward = fns
        warm(("dense", shape, impl), lambda: (self.forward(), self.forward_backward()))

    def time_forward(self, shape, impl):
        self.forward()

    def time_forward_backward(self, shape, impl):
        self.forward_backward()


class DenseSpeedup:
    """NumPy reference time / fastnn cpu time, measured in one process (reference first)."""
    params = [SHAPES]
    param_names = ["shape"]
    timeout = 180

    def setup(self, shape):
        self.reference = _fastnn(shape, "numpy")
        self.cpu = _fastnn(shape, "cpu")
        warm(("dense", shape, "cpu"), self.cpu[1])

    def track_speedup_forward(self, shape):
        return speedup(self.reference[0], self.cpu[0])
    track_speedup_forward.unit = "x"

    def track_speedup_forward_backward(self, shape):
        return speedup(self.reference[1], self.cpu[1])
    track_speedup_forward_backward.unit = "x"


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


class DenseCompile:
    """Seconds of each cpu kernel's first calls in a fresh interpreter (in the order listed, so
    helpers shared with an earlier kernel are already compiled): FASTNN_CACHE=0 (a compile),
    and with the on-disk cache filled by an earlier interpreter."""
    params = [["dense_forward", "dense_backward", "total"]]
    param_names = ["kernel"]
    timeout = 600

    def setup_cache(self):
        return {"compile": first_call_seconds(__name__, cache=False),
                "cached": first_call_seconds(__name__, cache=True)}

    def track_compile_seconds(self, seconds, kernel):
        return seconds["compile"][kernel]
    track_compile_seconds.unit = "s"

    def track_cached_first_call_seconds(self, seconds, kernel):
        return seconds["cached"][kernel]
    track_cached_first_call_seconds.unit = "s"
