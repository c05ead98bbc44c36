"""What one CUDA training step asks of the driver: kernel launches, device allocations, copies
between host and device, and synchronizations (the host waiting for the GPU), counted by wrapping
Numba's CUDA API for the duration of a call. Works on a GPU and in Numba's CUDA simulator (the
same wrappers, the simulator's classes), so the overhead of a step is measurable without a GPU.

A copy to the host waits for the GPU: it counts as a device-to-host copy and a synchronization.
``cuda.to_device`` counts as one allocation and one host-to-device copy; a call made inside a
counted call (``to_device`` allocating, then copying; a device function called by a kernel in
the simulator) is not counted again.
"""
import collections
import contextlib
import functools

#: The counters, in the order they are printed.
KINDS = ("kernel launches", "device allocations", "host-to-device copies",
         "device-to-host copies", "device-to-device copies", "synchronizations")


def _targets():
    """(object, attribute name, kinds counted per call) for each wrapped function."""
    from numba import cuda

    from fastnn.kernels.base import is_device_array
    from fastnn.kernels.cuda import is_simulator

    if not is_simulator():
        from numba.cuda.cudadrv.devicearray import DeviceNDArrayBase as Array
        from numba.cuda.dispatcher import _LaunchConfiguration as Launch
    else:  # the simulator
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray as Array
        from numba.cuda.simulator.kernel import FakeCUDAKernel as Launch
    alloc, h2d, d2h, d2d, sync = KINDS[1:]

    def copy_in(array, source, *args, **kwargs):  # (from the host, or from device memory)
        return (d2d,) if is_device_array(source) else (h2d,)

    from fastnn.kernels.cuda import cublas

    return [(Launch, "__call__", (KINDS[0],)),
            (cublas, "matmul", (KINDS[0],)),  # (a cuBLAS product: one launch of its own)
            (cuda, "device_array", (alloc,)),
            (cuda, "device_array_like", (alloc,)),
            (cuda, "pinned_array", (alloc,)),
            (cuda, "to_device", (alloc, h2d)),
            (cuda, "synchronize", (sync,)),
            (Array, "copy_to_device", copy_in),
            (Array, "copy_to_host", (d2h, sync))]


@contextlib.contextmanager
def counting():
    """A ``collections.Counter`` of ``KINDS`` that counts Numba CUDA calls made in the block."""
    counts = collections.Counter({kind: 0 for kind in KINDS})
    depth = [0]
    patched = []

    def wrap(function, kinds):
        @functools.wraps(function)
        def counted(*args, **kwargs):
            if depth[0] == 0:
                counts.update(kinds(*args, **kwargs) if callable(kinds) else kinds)
            depth[0] += 1
            try:
                return function(*args, **kwargs)
            finally:
                depth[0] -= 1
        return counted

    for owner, name, kinds in _targets():
        original = getattr(owner, name, None)
        if original is not None:
            patched.append((owner, name, original))
            setattr(owner, name, wrap(original, kinds))
    try:
        yield counts
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)


def count_step(batch=64, widths=None, steps=2):
    """The counts of one training step of the benchmark MLP (``fastnn.bench.mlp``) on the "cuda"
    backend, model and data on the device, after ``steps`` warm-up steps (the first allocates
    the model's workspaces)."""
    from fastnn.bench.mlp import MLP_WIDTHS, mlp_step

    step = mlp_step(batch, "cuda", widths=MLP_WIDTHS if widths is None else widths)
    for _ in range(steps):
        step()
    with counting() as counts:
        step()
    return counts


def print_counts(batch=64, widths=None, out=print):
    """``count_step`` as a table."""
    from fastnn.bench.mlp import MLP_WIDTHS

    widths = MLP_WIDTHS if widths is None else widths
    counts = count_step(batch, widths)
    out(f"fastnn bench --cuda --count: one training step of the {'-'.join(map(str, widths))} "
        f"MLP at batch {batch} (Dense, BatchNorm, ReLU; softmax cross-entropy; Adam), float32, "
        "model and data on the device, after warm-up")
    for kind in KINDS:
        out(f"{kind:<24}{counts[kind]:>6}")
    return counts
