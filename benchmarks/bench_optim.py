"""Optimizer updates over one flat float32 buffer holding every parameter of a model.

Sizes: the MLP 784-256-256-10 with batch norm (weights 784*256 + 256*256 + 256*10, biases, batch
norm gamma and beta: 270,346 parameters) and a 4M-parameter model. Each call is one update step of
every parameter (Adam at a fixed step count t = 10: its cost does not depend on t). The buffers are
updated in place by every call (lr 1e-6 keeps them finite and nearly still).

"torch" is the equivalent torch.optim step on one flat CPU tensor (default implementation, whose
grad is set once): SGD, SGD(momentum=beta, dampening=beta), RMSprop(alpha=beta), Adam.
"""
import functools

import numpy as np

from . import common
from .common import IMPLEMENTATIONS, kernels, speedup, torch_or_skip, warm

#: MLP 784-256-256-10: weights, biases, batch norm gamma and beta of the two hidden layers.
MLP_PARAMS = 784 * 256 + 256 * 256 + 256 * 10 + (256 + 256 + 10) + 2 * 2 * 256
SIZES = [MLP_PARAMS, 4_000_000]
KERNELS = ["sgd_update", "momentum_update", "rmsprop_update", "adam_update"]
LR, BETA, BETA1, BETA2, EPS, T = 1e-6, 0.9, 0.9, 0.999, 1e-8, 10


@functools.lru_cache(maxsize=6)
def optim_data(n, impl, seed=0):
    """p, g (float32, std 1) and zeroed state buffers m, v for one implementation (each has its
    own: the kernels update them in place)."""
    g = np.random.default_rng(seed)
    p, grad = g.standard_normal(n, dtype=np.float32), g.standard_normal(n, dtype=np.float32)
    return p, grad, np.zeros(n, np.float32), np.zeros(n, np.float32)


def _fastnn(n, impl):
    """{kernel: closure} for the "numpy" or "cpu" backend."""
    p, g, m, v = optim_data(n, impl)
    k = kernels
    return {
        "sgd_update": lambda: k.sgd_update(p, g, LR, backend=impl),
        "momentum_update": lambda: k.momentum_update(p, g, m, LR, BETA, backend=impl),
        "rmsprop_update": lambda: k.rmsprop_update(p, g, v, LR, BETA2, EPS, backend=impl),
        "adam_update": lambda: k.adam_update(p, g, m, v, T, LR, BETA1, BETA2, EPS, backend=impl),
    }


def _torch(n):
    torch = torch_or_skip()
    p_np, g_np, _, _ = optim_data(n, "torch")
    steps = {}
    for kernel, make in [
            ("sgd_update", lambda ps: torch.optim.SGD(ps, lr=LR)),
            ("momentum_update", lambda ps: torch.optim.SGD(ps, lr=LR, momentum=BETA,
                                                           dampening=BETA)),
            ("rmsprop_update", lambda ps: torch.optim.RMSprop(ps, lr=LR, alpha=BETA2, eps=EPS)),
            ("adam_update", lambda ps: torch.optim.Adam(ps, lr=LR, betas=(BETA1, BETA2),
                                                        eps=EPS))]:
        p = torch.nn.Parameter(torch.from_numpy(p_np.copy()))
        p.grad = torch.from_numpy(g_np)
        steps[kernel] = make([p]).step
    return steps


def _closures(n, impl):
    return _torch(n) if impl == "torch" else _fastnn(n, impl)


class OptimUpdate:
    """Time of one update step of a flat float32 buffer of n parameters."""
    params = [SIZES, IMPLEMENTATIONS]
    param_names = ["n_params", "implementation"]
    repeat = (2, 10, 2.0)
    timeout = 180

    def setup(self, n, impl):
        self.fn = _closures(n, impl)
        for name, fn in self.fn.items():
            warm(("optim", name, n, impl), fn)

    def time_sgd(self, n, impl):
        self.fn["sgd_update"]()

    def time_momentum(self, n, impl):
        self.fn["momentum_update"]()

    def time_rmsprop(self, n, impl):
        self.fn["rmsprop_update"]()

    def time_adam(self, n, impl):
        self.fn["adam_update"]()


class OptimSpeedup:
    """NumPy reference time / fastnn cpu time, measured in one process, in turns."""
    params = [SIZES]
    param_names = ["n_params"]
    timeout = 180

    def setup(self, n):
        self.reference = _fastnn(n, "numpy")
        self.cpu = _fastnn(n, "cpu")
        for name, fn in self.cpu.items():
            warm(("optim", name, n, "cpu"), fn)

    def track_speedup_adam(self, n):
        return speedup(self.reference["adam_update"], self.cpu["adam_update"])
    track_speedup_adam.unit = "x"

    def track_speedup_sgd(self, n):
        return speedup(self.reference["sgd_update"], self.cpu["sgd_update"])
    track_speedup_sgd.unit = "x"


#: A serial-path and a parallel-path size (with more than one Numba thread) for compile timing.
COMPILE_SIZES = [1000, 1 << 16]


def compile_cases():
    """Per cpu kernel, the calls whose first run compiles it (serial and parallel paths)."""
    cases = {}
    for name in KERNELS:
        calls = []
        for n in COMPILE_SIZES:
            p, g, m, v = (np.zeros(n, np.float32) for _ in range(4))
            states = {"sgd_update": (), "momentum_update": (m,), "rmsprop_update": (v,),
                      "adam_update": (m, v, T)}[name]
            hyper = {"sgd_update": (LR,), "momentum_update": (LR, BETA),
                     "rmsprop_update": (LR, BETA2, EPS),
                     "adam_update": (LR, BETA1, BETA2, EPS)}[name]
            calls.append(functools.partial(getattr(kernels, name), p, g, *states, *hyper,
                                           backend="cpu"))
        cases[name] = calls
    return cases


class OptimCompile(common.CompileTimes):
    params = [KERNELS + ["total"]]

    def setup_cache(self):
        return common.compile_and_cached_seconds(__name__)
