"""The implementations a benchmark case runs in, by name, and the libraries behind them.

fastnn's backends: "numpy" (the reference), "cpu" (Numba) and "cuda" (Numba CUDA: a GPU, or the
simulator). Peers, where importable: "torch" (eager), "torch-compile" (``torch.compile``, on the
training step only: it needs a C++ compiler and compiles for tens of seconds) and "jax" (jit) on
the CPU; "torch-cuda", "cupy" and "jax-cuda" on an NVIDIA GPU. ``library(impl)`` is the module a
closure is built with (for fastnn, the backend module that the layers call: the kernels without
the public API's argument checks), or a NotImplementedError that says what is missing (asv's
skip); ``place`` puts host arrays where an implementation computes.
"""
import importlib
import shutil
from types import SimpleNamespace
from typing import NamedTuple


class Implementation(NamedTuple):
    """The library an implementation imports, its device, and the key of its builder in a
    ``Case`` (the library's name unless it builds differently)."""
    library: str
    device: str
    builder: str = ""

    @property
    def key(self):
        return self.builder or self.library


IMPLEMENTATIONS = {
    "numpy": Implementation("fastnn", "numpy"), "cpu": Implementation("fastnn", "cpu"),
    "cuda": Implementation("fastnn", "cuda"),
    "torch": Implementation("torch", "cpu"), "jax": Implementation("jax", "cpu"),
    "torch-compile": Implementation("torch", "cpu", "torch-compile"),
    "torch-cuda": Implementation("torch", "cuda"), "cupy": Implementation("cupy", "cuda"),
    "jax-cuda": Implementation("jax", "gpu"),
}
#: The peers of each table: fastnn's "cpu" kernels against the reference and these; its "cuda"
#: kernels against these.
CPU_PEERS = ("numpy", "torch", "torch-compile", "jax")
GPU_PEERS = ("cupy", "torch-cuda", "jax-cuda")

_loaded = {}  # implementation name -> module, once it has loaded with its device


def library(impl):
    """The module behind implementation ``impl``, loaded once; NotImplementedError when it is not
    installed or sees no device for ``impl``."""
    if impl not in _loaded:
        family, device, _ = IMPLEMENTATIONS[impl]
        if family == "fastnn":
            from fastnn import backend
            try:
                module = backend.get(device)
            except RuntimeError as error:  # "cuda" without a GPU: says why
                raise NotImplementedError(str(error)) from None
        else:
            try:
                module = importlib.import_module(family)
            except ImportError:
                raise NotImplementedError(f"{family} is not installed") from None
            if not _has_device(family, module, device):
                raise NotImplementedError(f"{family} finds no {device} device here")
            if impl == "torch-compile" and not _has_compiler(module):
                raise NotImplementedError("torch.compile finds no C++ compiler here")
            if family == "jax":  # float32 matrix products, as fastnn's and PyTorch's (no TF32)
                module.config.update("jax_default_matmul_precision", "float32")
        _loaded[impl] = module
    return _loaded[impl]


def _has_compiler(torch):
    """Whether the C++ compiler that torch.compile's CPU code generator calls is on the PATH."""
    from torch._inductor import config

    return any(name and shutil.which(name) for name in config.cpp.cxx)


def _has_device(family, module, device):
    if device == "cpu":
        return True
    try:
        if family == "torch":
            return module.cuda.is_available()
        if family == "cupy":
            return module.cuda.runtime.getDeviceCount() > 0
        module.devices(device)  # jax: RuntimeError when no such platform
        return True
    except Exception:  # no driver, no device, a build without CUDA
        return False


def usable(impl):
    """Whether ``library(impl)`` loads here."""
    try:
        library(impl)
    except NotImplementedError:
        return False
    return True


def place(impl, data, dtype=None):
    """The host arrays ``data`` ({name: array}) as a namespace of arrays where ``impl`` computes
    (floating-point ones converted to ``dtype`` when given; the namespace may share memory with
    ``data``), with ``device``: fastnn's backend name, PyTorch's device or JAX's Device (CuPy:
    "cuda")."""
    family, device, _ = IMPLEMENTATIONS[impl]
    lib = library(impl)
    if family == "fastnn":
        put = lib.to_backend
    elif family == "torch":
        put = lambda a: lib.from_numpy(a).to(device)
    elif family == "cupy":
        put = lib.asarray
    else:
        device = lib.devices(device)[0]
        put = lambda a: lib.device_put(a, device)
    arrays = {name: put(a.astype(dtype) if dtype is not None and a.dtype.kind == "f" else a)
              for name, a in data.items()}
    return SimpleNamespace(device=device, **arrays)


def synchronize():
    """Wait for all work on the GPU: Numba's, and that of PyTorch and CuPy when loaded (a JAX
    closure waits for its own results)."""
    from numba import cuda

    cuda.synchronize()
    if "torch-cuda" in _loaded:
        _loaded["torch-cuda"].cuda.synchronize()
    if "cupy" in _loaded:
        _loaded["cupy"].cuda.runtime.deviceSynchronize()

