"""Batch normalization in training mode on (m, n) float32 data: forward, and forward + backward.

"torch" is F.batch_norm(training=True) on the CPU: forward under no_grad, backward by autograd
with dX, dgamma and dbeta, as ``batchnorm_backward`` returns.
"""
import functools

import numpy as np

from . import common
from .common import IMPLEMENTATIONS, batchnorm_data, kernels, torch_or_skip

SHAPES = [(64, 256), (4096, 1024), (65536, 256)]
DECAY, EPS = 0.9, 1e-5


def _fastnn(shape, impl):
    """(forward, forward_backward) closures for the "numpy" or "cpu" backend."""
    d = batchnorm_data(*shape)
    running_mean, running_var = np.zeros(shape[1], np.float32), np.ones(shape[1], np.float32)

    def forward():
        return kernels.batchnorm_forward(d.X, d.gamma, d.beta, running_mean, running_var,
                                         training=True, decay=DECAY, eps=EPS, backend=impl)

    def forward_backward():
        _, cache = forward()
        return kernels.batchnorm_backward(d.dY, cache, backend=impl)

    return forward, forward_backward


def _torch(shape):
    torch = torch_or_skip()
    F = torch.nn.functional
    d = batchnorm_data(*shape)
    X = torch.from_numpy(d.X).requires_grad_()
    gamma = torch.from_numpy(d.gamma).requires_grad_()
    beta = torch.from_numpy(d.beta).requires_grad_()
    dY = torch.from_numpy(d.dY)
    running_mean, running_var = torch.zeros(shape[1]), torch.ones(shape[1])

    def run():
        return F.batch_norm(X, running_mean, running_var, gamma, beta, training=True,
                            momentum=1 - DECAY, eps=EPS)

    def forward():
        with torch.no_grad():
            return run()

    def forward_backward():
        X.grad = gamma.grad = beta.grad = None
        run().backward(dY)

    return forward, forward_backward


def _closures(shape, impl):
    return _torch(shape) if impl == "torch" else _fastnn(shape, impl)


class BatchNorm(common.ForwardBackwardTimes):
    """Time of a training-mode batch norm forward, and of forward + backward."""
    params = [SHAPES, IMPLEMENTATIONS]
    closures = staticmethod(_closures)


class BatchNormSpeedup(common.ForwardBackwardSpeedup):
    params = [SHAPES]
    closures = staticmethod(_fastnn)


#: A serial-path and a parallel-path shape (with more than one Numba thread) for compile timing.
COMPILE_SHAPES = [(16, 32), (1024, 64)]


def compile_cases():
    """Per cpu kernel, the calls whose first run compiles it (serial and parallel paths); the
    backward pass gets its cache from the NumPy reference (the same for every backend)."""
    cases = {"batchnorm_forward": [], "batchnorm_backward": []}
    for shape in COMPILE_SHAPES:
        d = batchnorm_data(*shape)
        stats = np.zeros(shape[1], np.float32), np.ones(shape[1], np.float32)
        _, cache = kernels.batchnorm_forward(d.X, d.gamma, d.beta, *stats, backend="numpy")
        cases["batchnorm_forward"].append(functools.partial(
            kernels.batchnorm_forward, d.X, d.gamma, d.beta, *stats, backend="cpu"))
        cases["batchnorm_backward"].append(functools.partial(
            kernels.batchnorm_backward, d.dY, cache, backend="cpu"))
    return cases


class BatchNormCompile(common.CompileTimes):
    params = [["batchnorm_forward", "batchnorm_backward", "total"]]

    def setup_cache(self):
        return common.compile_and_cached_seconds(__name__)
