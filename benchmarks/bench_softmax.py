"""Softmax family on (m, C) float32 logits: softmax, log-softmax and hardmax (forward kernels),
and the fused softmax cross-entropy (loss and dZ in one pass: forward + backward).

"torch" is torch.softmax / torch.log_softmax / one_hot(argmax) on the CPU, and F.cross_entropy
forward + autograd backward (dZ) for the loss. fastnn has no loss-only call, so the loss family's
forward is timed through the softmax kernels.
"""
import functools

from . import common
from .common import IMPLEMENTATIONS, kernels, softmax_data, speedup, torch_or_skip, warm

SHAPES = [(64, 10), (4096, 1000), (65536, 100)]


def _fastnn(shape, impl):
    """{name: closure} for the "numpy" or "cpu" backend."""
    d = softmax_data(*shape)
    return {
        "softmax": lambda: kernels.softmax(d.Z, backend=impl),
        "log_softmax": lambda: kernels.log_softmax(d.Z, backend=impl),
        "hardmax": lambda: kernels.hardmax(d.Z, backend=impl),
        "cross_entropy": lambda: kernels.softmax_cross_entropy(d.Z, d.y, backend=impl),
    }


def _torch(shape):
    torch = torch_or_skip()
    F = torch.nn.functional
    d = softmax_data(*shape)
    Z = torch.from_numpy(d.Z)
    Zg = torch.from_numpy(d.Z).requires_grad_()
    y = torch.from_numpy(d.y)

    def cross_entropy():
        Zg.grad = None
        F.cross_entropy(Zg, y).backward()

    return {
        "softmax": lambda: torch.softmax(Z, dim=1),
        "log_softmax": lambda: torch.log_softmax(Z, dim=1),
        "hardmax": lambda: F.one_hot(Z.argmax(dim=1), shape[1]).to(Z.dtype),
        "cross_entropy": cross_entropy,
    }


class _SoftmaxBase:
    params = [SHAPES, IMPLEMENTATIONS]
    param_names = ["shape", "implementation"]
    repeat = (2, 10, 2.0)
    timeout = 180

    def setup(self, shape, impl):
        self.fn = _torch(shape) if impl == "torch" else _fastnn(shape, impl)
        for name, fn in self.fn.items():
            warm(("softmax", name, shape, impl), fn)


class Softmax(_SoftmaxBase):
    """Time of the forward kernels: softmax, log-softmax, hardmax (one-hot of the row argmax)."""

    def time_softmax(self, shape, impl):
        self.fn["softmax"]()

    def time_log_softmax(self, shape, impl):
        self.fn["log_softmax"]()

    def time_hardmax(self, shape, impl):
        self.fn["hardmax"]()


class SoftmaxCrossEntropy(_SoftmaxBase):
    """Time of the mean softmax cross-entropy with class labels and its gradient dZ."""

    def time_forward_backward(self, shape, impl):
        self.fn["cross_entropy"]()


class SoftmaxSpeedup:
    """NumPy reference time / fastnn cpu time, measured in one process, in turns."""
    params = [SHAPES]
    param_names = ["shape"]
    timeout = 180

    def setup(self, shape):
        self.reference = _fastnn(shape, "numpy")
        self.cpu = _fastnn(shape, "cpu")
        for name, fn in self.cpu.items():
            warm(("softmax", name, shape, "cpu"), fn)

    def track_speedup_softmax(self, shape):
        return speedup(self.reference["softmax"], self.cpu["softmax"])
    track_speedup_softmax.unit = "x"

    def track_speedup_cross_entropy(self, shape):
        return speedup(self.reference["cross_entropy"], self.cpu["cross_entropy"])
    track_speedup_cross_entropy.unit = "x"


#: A serial-path and a parallel-path shape (with more than one Numba thread) for compile timing.
COMPILE_SHAPES = [(16, 10), (1024, 64)]
KERNELS = ["softmax", "log_softmax", "hardmax", "softmax_cross_entropy"]


def compile_cases():
    """Per cpu kernel, the calls whose first run compiles it (serial and parallel paths)."""
    cases = {name: [] for name in KERNELS}
    for shape in COMPILE_SHAPES:
        d = softmax_data(*shape)
        for name in KERNELS[:3]:
            cases[name].append(functools.partial(getattr(kernels, name), d.Z, backend="cpu"))
        cases["softmax_cross_entropy"].append(
            functools.partial(kernels.softmax_cross_entropy, d.Z, d.y, backend="cpu"))
    return cases


class SoftmaxCompile(common.CompileTimes):
    params = [KERNELS + ["total"]]

    def setup_cache(self):
        return common.compile_and_cached_seconds(__name__)
