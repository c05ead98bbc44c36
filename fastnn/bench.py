"""``python -m fastnn bench``: each kernel against its NumPy reference (and PyTorch CPU when it is
installed), timed in one process, with throughput against this machine's measured limits.

Each row times its implementations in turns (``interleaved``): after one warm-up call each (which
compiles), several rounds in which every implementation is timed for a moment. A row's time is
the median of its rounds, and a ratio the median of the per-round ratios, so that a slow spell of
the machine (this 2-core VM's speed drifts by 1.5x within seconds, and a slow spell once made
one implementation 7x slower for a whole 0.6 s sample) falls on every implementation of a round
alike. NumPy's OpenBLAS keeps its threads spinning after a matmul, so there is a short
pause before each implementation's turn: each is measured on an idle machine, as it would run in
its own training loop.
"""
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from numba import prange

from fastnn import kernels
from fastnn.kernels.cpu._jit import jit


@jit(parallel=True)
def _triad(a, b, c, s):
    for i in prange(a.shape[0]):
        a[i] = b[i] + s * c[i]


def machine_limits():
    """(float32 GFLOP/s of NumPy's matmul at 2048^3, GB/s of a parallel triad over 3 x 512 MB)."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((2048, 2048), dtype=np.float32)
    A @ A
    gflops = 2 * 2048 ** 3 / _median_seconds(lambda: A @ A, budget=1.0) / 1e9
    n = 1 << 27
    a, b, c = np.zeros(n, np.float32), np.ones(n, np.float32), np.ones(n, np.float32)
    _triad(a, b, c, np.float32(2))
    time.sleep(0.3)
    gbs = 3 * 4 * n / _median_seconds(lambda: _triad(a, b, c, np.float32(2)), budget=1.0) / 1e9
    return gflops, gbs


@dataclass
class Case:
    """One row of the table: ``run(backend)`` does the work once; ``work`` is in FLOP or bytes."""
    kernel: str
    shape: tuple
    run: Callable
    torch_run: Callable = None
    flops: float = 0.0
    nbytes: float = 0.0


def _median_seconds(fn, budget, min_calls=3, max_calls=200):
    """Median seconds of a call of ``fn()`` (already warm): at least ``min_calls`` calls, more
    while the ``budget`` of seconds lasts."""
    times = []
    start = time.perf_counter()
    while len(times) < min_calls or (time.perf_counter() - start < budget
                                     and len(times) < max_calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


#: Rounds of ``interleaved`` (the table's header says how many).
ROUNDS = 5


def interleaved(fns, rounds=ROUNDS, budget=0.12, pause=0.1):
    """{name: [median seconds per call in each round]} of the functions ``fns`` ({name: fn}):
    one warm-up call each, then ``rounds`` rounds in which each in turn, after a ``pause``, is
    called for about ``budget`` seconds (at least once)."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(pause)
            times[name].append(_median_seconds(fn, budget, min_calls=1))
    return times


def ratio(times, slow, fast):
    """The median over rounds of ``times[slow][r] / times[fast][r]`` (``interleaved``'s times)."""
    return float(np.median(np.divide(times[slow], times[fast])))


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def dense_case(m, n_in, n_out, rng, torch):
    X = rng.standard_normal((m, n_in), dtype=np.float32)
    W = (rng.standard_normal((n_in, n_out), dtype=np.float32) * np.float32(np.sqrt(2 / n_in)))
    b = rng.standard_normal(n_out, dtype=np.float32)
    dA = rng.standard_normal((m, n_out), dtype=np.float32)

    def run(backend):
        A = kernels.dense_forward(X, W, b, "relu", backend=backend)
        kernels.dense_backward(dA, X, W, A, "relu", backend=backend)

    torch_run = None
    if torch is not None:
        tX, tdA = torch.from_numpy(X).requires_grad_(), torch.from_numpy(dA)
        tW, tb = torch.from_numpy(W.T.copy()).requires_grad_(), torch.from_numpy(b).requires_grad_()

        def torch_run():
            torch.relu(torch.nn.functional.linear(tX, tW, tb)).backward(tdA)
    return Case("dense relu fwd+bwd", (m, n_in, n_out), run, torch_run,
                flops=3 * 2.0 * m * n_in * n_out)


def batchnorm_case(m, n, rng, torch):
    X = rng.standard_normal((m, n), dtype=np.float32) * 2 + 1
    gamma, beta = np.ones(n, np.float32), np.zeros(n, np.float32)
    dY = rng.standard_normal((m, n), dtype=np.float32)
    rm, rv = np.zeros(n, np.float32), np.ones(n, np.float32)

    def run(backend):
        _, cache = kernels.batchnorm_forward(X, gamma, beta, rm, rv, backend=backend)
        kernels.batchnorm_backward(dY, cache, backend=backend)

    torch_run = None
    if torch is not None:
        tX, tdY = torch.from_numpy(X).requires_grad_(), torch.from_numpy(dY)
        tg, tb = torch.from_numpy(gamma).requires_grad_(), torch.from_numpy(beta).requires_grad_()
        trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())

        def torch_run():
            torch.nn.functional.batch_norm(tX, trm, trv, tg, tb, training=True,
                                           momentum=0.1).backward(tdY)
    # forward reads X twice and writes Y; backward reads X and dY twice and writes dX
    return Case("batchnorm fwd+bwd", (m, n), run, torch_run, nbytes=8.0 * m * n * 4)


def cross_entropy_case(m, c, rng, torch):
    Z = rng.standard_normal((m, c), dtype=np.float32) * 3
    y = rng.integers(0, c, m)

    def run(backend):
        kernels.softmax_cross_entropy(Z, y, backend=backend)

    torch_run = None
    if torch is not None:
        tZ, ty = torch.from_numpy(Z).requires_grad_(), torch.from_numpy(y)

        def torch_run():
            torch.nn.functional.cross_entropy(tZ, ty).backward()
    # reads Z, writes dZ
    return Case("softmax-CE fwd+bwd", (m, c), run, torch_run, nbytes=2.0 * m * c * 4)


def softmax_case(m, c, rng, torch):
    Z = rng.standard_normal((m, c), dtype=np.float32) * 3

    def run(backend):
        kernels.softmax(Z, backend=backend)

    torch_run = None
    if torch is not None:
        tZ = torch.from_numpy(Z)

        def torch_run():
            torch.softmax(tZ, 1)
    return Case("softmax", (m, c), run, torch_run, nbytes=2.0 * m * c * 4)


#: Layer widths of the benchmarked MLP: 784 inputs, two hidden layers of 256, 10 classes.
MLP_WIDTHS = (784, 256, 256, 10)


def _mlp_data(batch, widths, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((batch, widths[0]), dtype=np.float32),
            rng.integers(0, widths[-1], batch))


def mlp_step(batch, backend, seed=0, widths=MLP_WIDTHS):
    """One training step (forward, loss, backward, Adam update) of an MLP with batch norm and
    ReLU after each hidden Dense layer (``widths``: inputs, hidden..., classes) on random data,
    as a closure (``Sequential.train_on_batch``; the data on the backend: the device for
    "cuda")."""
    from fastnn import backend as fastnn_backend
    from fastnn import optim
    from fastnn.nn import BatchNorm, Dense, ReLU, Sequential

    k = fastnn_backend.get(backend)
    X, y = (k.to_backend(a) for a in _mlp_data(batch, widths, seed))
    layers = [layer for width in widths[1:-1]
              for layer in (Dense(width, use_bias=False), BatchNorm(), ReLU())]
    model = Sequential(layers + [Dense(widths[-1])], backend=backend).build(widths[0], seed)
    optimizer = optim.Adam(1e-3, backend=backend)
    return lambda: model.train_on_batch(X, y, optimizer)


def torch_mlp_step(batch, torch, seed=0, widths=MLP_WIDTHS, device="cpu"):
    """The same training step in PyTorch (eager, autograd, torch.optim.Adam) on ``device``."""
    nn = torch.nn
    torch.manual_seed(seed)
    X, y = (torch.from_numpy(a).to(device) for a in _mlp_data(batch, widths, seed))
    layers = [layer for n_in, n_out in zip(widths[:-2], widths[1:-1])
              for layer in (nn.Linear(n_in, n_out, bias=False), nn.BatchNorm1d(n_out), nn.ReLU())]
    model = nn.Sequential(*layers, nn.Linear(widths[-2], widths[-1])).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        optimizer.step()
    return step


def training_step_case(batch, torch):
    steps = {backend: mlp_step(batch, backend) for backend in ("numpy", "cpu")}
    torch_run = None if torch is None else torch_mlp_step(batch, torch)
    return Case("MLP train step", (batch, *MLP_WIDTHS), lambda backend: steps[backend](),
                torch_run, flops=mlp_step_flops(batch))


def mlp_step_flops(batch, widths=MLP_WIDTHS):
    """Floating-point operations of the matrix products of one training step (forward and the
    two backward products per layer)."""
    return 3 * 2.0 * batch * sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def cases(quick=False, seed=0):
    """The benchmark rows: the issue's target shapes, and small shapes for the serial path."""
    rng, torch = np.random.default_rng(seed), _torch()
    rows = [dense_case(64, 784, 256, rng, torch), batchnorm_case(64, 256, rng, torch),
            cross_entropy_case(64, 10, rng, torch), softmax_case(64, 10, rng, torch),
            batchnorm_case(4096, 1024, rng, torch), cross_entropy_case(4096, 1000, rng, torch),
            training_step_case(64, torch)]
    if not quick:
        rows += [dense_case(256, 1024, 1024, rng, torch), dense_case(4096, 1024, 1024, rng, torch),
                 batchnorm_case(65536, 256, rng, torch), cross_entropy_case(65536, 100, rng, torch),
                 softmax_case(4096, 1000, rng, torch), training_step_case(512, torch)]
    return rows


def measure(case):
    """``interleaved`` times of the reference ("numpy"), fastnn's cpu kernels ("cpu") and, when
    installed, PyTorch ("torch")."""
    fns = {"numpy": lambda: case.run("numpy"), "cpu": lambda: case.run("cpu")}
    if case.torch_run is not None:
        fns["torch"] = case.torch_run
    return interleaved(fns)


def _throughput(case, seconds, limits):
    if case.flops:
        rate = case.flops / seconds / 1e9
        return f"{rate:7.1f} GFLOP/s ({rate / limits[0]:4.0%})"
    rate = case.nbytes / seconds / 1e9
    return f"{rate:7.1f} GB/s    ({rate / limits[1]:4.0%})"


def run(quick=False, out=print):
    """Measure every case and print the table; returns the rows as dicts."""
    import numba
    from threadpoolctl import threadpool_info

    from fastnn.kernels.cpu import _blas

    blas = ", ".join(f"{i['internal_api']}:{i['num_threads']}" for i in threadpool_info())
    limits = machine_limits()
    out(f"fastnn bench: numba threads {numba.get_num_threads()}, BLAS threads {blas}, float32; "
        f"times in ms (medians of {ROUNDS} interleaved rounds), ratio = reference / fastnn "
        "(median of the rounds' ratios)")
    out(f"fastnn's matrix products: {_blas.PROVIDER_INFO} (FASTNN_BLAS={_blas.config.BLAS})")
    out(f"machine limits measured now: NumPy sgemm {limits[0]:.0f} GFLOP/s, parallel triad "
        f"{limits[1]:.1f} GB/s (arrays that fit the last-level cache can exceed it)")
    header = (f"{'kernel':<20}{'shape':<20}{'numpy ms':>10}{'fastnn ms':>11}{'ratio':>8}"
              f"{'torch ms':>10}{'vs torch':>9}  fastnn throughput (% of limit)")
    out(header)
    out("-" * len(header))
    rows = []
    for case in cases(quick):
        times = measure(case)
        t = {name: float(np.median(seconds)) for name, seconds in times.items()}
        torch_ms = f"{t['torch'] * 1e3:10.3f}" if "torch" in t else f"{'-':>10}"
        vs_torch = f"{ratio(times, 'torch', 'cpu'):8.2f}x" if "torch" in t else f"{'-':>9}"
        out(f"{case.kernel:<20}{'x'.join(map(str, case.shape)):<20}{t['numpy'] * 1e3:10.3f}"
            f"{t['cpu'] * 1e3:11.3f}{ratio(times, 'numpy', 'cpu'):7.2f}x{torch_ms}{vs_torch}  "
            f"{_throughput(case, t['cpu'], limits)}")
        rows.append(dict(kernel=case.kernel, shape=case.shape, **t))
    return rows
