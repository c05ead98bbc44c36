"""The benchmark tables: ``run`` (``python -m fastnn bench``) times fastnn's "cpu" kernels
against the NumPy reference and PyTorch (eager; torch.compile on the training steps) and JAX on
the CPU, each in its own process (``fastnn.bench.apart``); ``run_cuda`` (``python -m fastnn
bench --cuda``) its "cuda" kernels against CuPy, PyTorch and JAX on the GPU, on arrays already on
the device. Peers that are not installed are left out (the header says so).

Each row times its implementations in interleaved rounds (``fastnn.bench.timing``; on the GPU
each call followed by a device synchronization) and prints the medians, the ratios of each
implementation's time to fastnn's (above 1: fastnn is faster) and fastnn's throughput against
the limits measured at the start (``fastnn.bench.machine``).
"""
import numpy as np

from fastnn.bench import apart, machine, peers
from fastnn.bench.cases import (
    ELEMENTWISE_LOSSES,
    batchnorm,
    cross_entropy,
    dense,
    dropout,
    elementwise_loss,
    optimizer,
    softmax,
)
from fastnn.bench.mlp import MLP_PARAMS, mlp
from fastnn.bench.timing import ROUNDS, interleaved, ratio

#: Batch sizes of the training-step rows (quick table too): on the CPU, on the GPU.
CPU_STEP_BATCHES = (64, 512)
GPU_STEP_BATCHES = (64, 4096)


def table_cases(quick=False, gpu=False):
    """The rows (also the asv suite's cases): a training step's layers at batch 64 and the
    issue's large shapes, the elementwise losses; the full table adds larger shapes and the
    other kernels (forward-only, log-softmax, hardmax, the other optimizers); then the training
    steps."""
    rows = [dense(64, 784, 256), batchnorm(64, 256), cross_entropy(64, 10), softmax(64, 10),
            batchnorm(4096, 1024), cross_entropy(4096, 1000), optimizer(MLP_PARAMS),
            dropout(64, 256)]
    rows += [elementwise_loss(4096, 1000, kind) for kind in ELEMENTWISE_LOSSES]
    if not quick:
        rows += [dense(256, 1024, 1024), dense(4096, 1024, 1024), batchnorm(65536, 256),
                 cross_entropy(65536, 100), softmax(4096, 1000), optimizer(4_000_000),
                 dropout(4096, 1024), dense(4096, 1024, 1024, backward=False),
                 batchnorm(65536, 256, backward=False), softmax(4096, 1000, "log_softmax"),
                 softmax(4096, 1000, "hardmax")]
        rows += [optimizer(4_000_000, rule) for rule in ("sgd", "momentum", "rmsprop")]
    return rows + [mlp(batch) for batch in (GPU_STEP_BATCHES if gpu else CPU_STEP_BATCHES)]


def measure(case, impls, sync=None, pause=0.1):
    """``interleaved`` times of ``case`` in those of ``impls`` it runs here, in this process."""
    return interleaved({impl: case.closure(impl) for impl in case.implementations(impls)},
                       sync=sync, pause=pause)


def _throughput(case, seconds, limits):
    if case.flops:
        rate = case.flops / seconds / 1e9
        share = f"({rate / limits.gflops:4.0%})" if limits.gflops else "(  - )"
        return f"{rate:8.1f} GFLOP/s {share}"
    rate = case.nbytes / seconds / 1e9
    return f"{rate:8.1f} GB/s    ({rate / limits.gbs:4.0%})"


def _table(fast, peer_names, found, cases, limits, measure, out):
    """Print one row per case (fastnn's ``fast`` implementation against those of ``peer_names``
    ``found`` here; ``measure(case, impls)``: ``interleaved``'s times) and return the rows as
    dicts (kernel, shape, and seconds per call by implementation)."""
    found = [impl for impl in peer_names if impl in found]
    missing = [impl for impl in peer_names if impl not in found]
    out(f"compared with: {', '.join(found) or 'nothing'}"
        + (f"; not found here: {', '.join(missing)}" if missing else ""))
    widths = {impl: max(14, len(impl) + 5) for impl in found}
    header = (f"{'kernel':<20}{'shape':<21}{'fastnn ms':>10}"
              + "".join(f"{impl + ' ms':>{widths[impl]}}{'ratio':>7}" for impl in found)
              + "  fastnn throughput (% of limit)")
    out(header)
    out("-" * len(header))
    rows = []
    for case in cases:
        times = measure(case, [impl for impl in (fast, *found) if case.has_version(impl)])
        t = {impl: float(np.median(seconds)) for impl, seconds in times.items()}
        cells = "".join(f"{t[impl] * 1e3:{widths[impl]}.3f}{ratio(times, impl, fast):6.2f}x"
                        if impl in t else f"{'-':>{widths[impl]}}{'-':>7}" for impl in found)
        out(f"{case.name:<20}{'x'.join(map(str, case.shape)):<21}{t[fast] * 1e3:10.3f}{cells}  "
            f"{_throughput(case, t[fast], limits)}")
        rows.append(dict(kernel=case.name, shape=case.shape, **t))
    return rows


def run(quick=False, out=print, threads=0):
    """Measure every case with fastnn's "cpu" kernels (on ``threads`` Numba threads; 0: all)
    against the NumPy reference and the CPU peers, each implementation in its own process
    (``fastnn.bench.apart``), and print the table; returns the rows as dicts (kernel, shape, and
    seconds per call by implementation)."""
    import numba
    from threadpoolctl import threadpool_info

    from fastnn import config
    from fastnn.kernels.cpu import BLAS_PROVIDER

    blas = ", ".join(f"{i['internal_api']}:{i['num_threads']}" for i in threadpool_info())
    limits = machine.cpu_limits()
    out(f"fastnn bench: numba threads {threads or numba.get_num_threads()}, BLAS threads {blas}, "
        f"float32; each implementation in its own process; times in ms (medians of {ROUNDS} "
        "interleaved rounds), ratio = that time / fastnn's (median of the rounds' ratios; above "
        "1: fastnn is faster)")
    out(f"fastnn's matrix products: {BLAS_PROVIDER} (FASTNN_BLAS={config.BLAS})")
    out(f"machine limits measured now: NumPy sgemm {limits.gflops:.0f} GFLOP/s, parallel triad "
        f"{limits.gbs:.1f} GB/s (arrays that fit the last-level cache can exceed it)")
    with apart.Workers(("cpu", *peers.CPU_PEERS), threads) as workers:
        return _table("cpu", peers.CPU_PEERS, workers.usable, table_cases(quick), limits,
                      workers.measure, out)


def require_real_gpu():
    """Raise a RuntimeError unless a real CUDA GPU can be used (the simulator does not count)."""
    from fastnn.kernels.cuda import is_simulator, require_gpu

    if is_simulator():
        raise RuntimeError("NUMBA_ENABLE_CUDASIM is set: the CUDA simulator is not a GPU to "
                           "time; unset it and run on a machine with an NVIDIA GPU")
    require_gpu()


def run_cuda(quick=False, out=print):
    """Measure every case with fastnn's "cuda" kernels on this GPU and print the table; returns
    the rows as dicts. Without a real GPU, ``require_real_gpu``'s RuntimeError."""
    require_real_gpu()
    limits = machine.gpu_limits(peers.synchronize)
    sgemm = f"{limits.gflops:.0f} GFLOP/s" if limits.gflops else "n/a (neither PyTorch nor CuPy)"
    out(f"fastnn bench --cuda on {machine.gpu_name()}: float32 device arrays; times in ms per "
        f"call with a device synchronization (medians of {ROUNDS} interleaved rounds), ratio = "
        "that time / fastnn's (median of the rounds' ratios; above 1: fastnn is faster)")
    out(f"limits measured now: device-to-device copy {limits.gbs:.0f} GB/s, cuBLAS sgemm 4096^3 "
        f"(TF32 off) {sgemm}")
    # In one process: each call ends with a synchronization, so no pool is left spinning (and
    # no pause between turns: after its synchronization the GPU is idle).
    found = [impl for impl in peers.GPU_PEERS if peers.usable(impl)]
    return _table("cuda", peers.GPU_PEERS, found, table_cases(quick, gpu=True), limits,
                  lambda case, impls: measure(case, impls, peers.synchronize, pause=0.0), out)
