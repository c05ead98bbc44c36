"""Whether the CUDA backend can run here, and a clear error when it cannot.

Nothing here touches the GPU at import: the driver is asked only when ``require_gpu()`` is called.
Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` set before numba is imported) counts as a
device: the kernels then run, slowly, in Python threads (the test suite uses it).
"""
import importlib.util

import numba

INSTALL_HINT = ('install the CUDA extra: pip install "fastnn[cuda]", or numba-cuda for your '
                'driver directly: pip install "numba-cuda[cu12]" (CUDA 12.x driver) or '
                '"numba-cuda[cu13]" (CUDA 13.x driver); nvidia-smi shows the driver\'s CUDA '
                'version')


def is_simulator():
    """True when Numba's CUDA simulator stands in for the GPU."""
    return bool(numba.config.ENABLE_CUDASIM)


def _why_unavailable():
    """Why Numba cannot use a GPU here (a sentence), or None when it can."""
    from numba import cuda

    if cuda.is_available():
        return None
    try:
        from numba.cuda.cudadrv.driver import driver

        count = driver.get_device_count()
    except Exception as error:  # the driver library is missing or fails to initialize
        detail = " ".join(str(error).split()).rstrip(": ")
        reason = f"the NVIDIA driver could not be loaded ({detail})"
    else:
        reason = ("the NVIDIA driver reports no GPU" if count == 0 else
                  "Numba found the driver but cannot use its GPU")
    if importlib.util.find_spec("numba_cuda") is None:
        reason += "; numba-cuda (Numba's CUDA target) is not installed either"
    return reason


def gpu_available():
    """True when the CUDA kernels can run: a usable GPU, or the simulator."""
    return is_simulator() or _why_unavailable() is None


def require_gpu():
    """Return quietly when the CUDA kernels can run (a usable GPU, or the simulator); else raise a
    RuntimeError that says why not and what to install."""
    if is_simulator():
        return
    reason = _why_unavailable()
    if reason is not None:
        raise RuntimeError(f"fastnn's CUDA backend cannot run: {reason}. It needs an NVIDIA GPU "
                           f"with its driver and numba-cuda; {INSTALL_HINT}.")
