"""GPU benchmark table: fastnn's CUDA kernels against CuPy and PyTorch (CUDA) when they are
importable, with throughput against this card's limits measured at the start: the
device-to-device copy bandwidth (the limit of the memory-bound kernels) and cuBLAS sgemm through
PyTorch or CuPy with TF32 off (the limit of the matrix products).

Every implementation works on float32 arrays already on the device, with preallocated outputs
where it offers them. A fastnn call ends by reading its NaN/inf counter back to the host, which
waits for the GPU; the others are synchronized after each call too, so every time is a wall-clock
time per call with the GPU idle at both ends: the median of samples taken after a warm-up call
(which compiles fastnn's kernels).

``run()`` needs a real GPU: without one it raises ``require_gpu()``'s error, and under the CUDA
simulator it refuses (there is nothing to time).
"""
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from fastnn import config

#: Batch sizes of the training-step rows (see ``training_step_case``).
TRAINING_STEP_BATCHES = (64, 4096)


@dataclass
class Case:
    """One row: ``fastnn()`` and each of ``others`` (by library name) do the work once; the work
    is ``flops`` floating-point operations or ``nbytes`` bytes of memory traffic."""
    kernel: str
    shape: tuple
    fastnn: Callable
    others: dict = field(default_factory=dict)
    flops: float = 0.0
    nbytes: float = 0.0


# --- the GPU and the libraries to compare with ---------------------------------------------------

def require_real_gpu():
    """Raise a RuntimeError unless a real CUDA GPU can be used (the simulator does not count)."""
    from fastnn.kernels.cuda import is_simulator, require_gpu

    if is_simulator():
        raise RuntimeError("fastnn bench_cuda: NUMBA_ENABLE_CUDASIM is set; the CUDA simulator is "
                           "not a GPU to time. Unset it and run on a machine with an NVIDIA GPU.")
    require_gpu()


def libraries():
    """{"cupy": module, "torch": module} for those importable with a usable GPU."""
    found = {}
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            found["cupy"] = cupy
    except Exception:  # not installed, or no driver/device for it
        pass
    try:
        import torch

        if torch.cuda.is_available():
            found["torch"] = torch
    except ImportError:
        pass
    return found


def synchronize(libs):
    """Wait for all work on the GPU (Numba's, and PyTorch's and CuPy's streams)."""
    from numba import cuda

    cuda.synchronize()
    if "torch" in libs:
        libs["torch"].cuda.synchronize()
    if "cupy" in libs:
        libs["cupy"].cuda.runtime.deviceSynchronize()


def median_seconds(fn, libs, budget=0.5, max_repeat=200):
    """Median wall-clock seconds of ``fn()`` followed by a device synchronization, after one
    warm-up call: at least 3 samples, more within ``budget`` seconds."""
    fn()
    synchronize(libs)
    times, start = [], time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < budget and len(times) < max_repeat):
        t0 = time.perf_counter()
        fn()
        synchronize(libs)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def device_name():
    """The current GPU's name."""
    from numba import cuda

    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else name


def copy_bandwidth(libs, nbytes=1 << 29):
    """GB/s of a device-to-device copy of ``nbytes`` (read + write counted)."""
    from numba import cuda

    src = cuda.device_array(nbytes // 4, np.float32)
    dst = cuda.device_array_like(src)
    return 2 * nbytes / median_seconds(lambda: dst.copy_to_device(src), libs) / 1e9


def sgemm_gflops(libs, n=4096):
    """GFLOP/s of cuBLAS sgemm at n^3 through PyTorch (TF32 off) or CuPy (which uses TF32 only
    when CUPY_TF32=1 is set); None when neither is available."""
    if "torch" in libs:
        torch = libs["torch"]
        saved = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            a = torch.randn(n, n, device="cuda")
            seconds = median_seconds(lambda: a @ a, libs)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = saved
    elif "cupy" in libs:
        a = libs["cupy"].random.standard_normal((n, n), dtype=np.float32)
        seconds = median_seconds(lambda: a @ a, libs)
    else:
        return None
    return 2.0 * n ** 3 / seconds / 1e9


# --- cases ---------------------------------------------------------------------------------------

def _device_arrays(libs, **host):
    """The host arrays on the device for fastnn (Numba) and for each library, by name."""
    from numba import cuda

    on = {"fastnn": {k: cuda.to_device(v) for k, v in host.items()}}
    if "cupy" in libs:
        on["cupy"] = {k: libs["cupy"].asarray(v) for k, v in host.items()}
    if "torch" in libs:
        on["torch"] = {k: libs["torch"].from_numpy(v).cuda() for k, v in host.items()}
    return on


def dense_case(m, n_in, n_out, libs, seed=0):
    """Dense layer with ReLU, forward and backward: A = relu(X @ W + b); dX, dW, db."""
    import fastnn.kernels.cuda as kc

    g = np.random.default_rng(seed)
    arrays = _device_arrays(
        libs, X=g.standard_normal((m, n_in), dtype=np.float32),
        W=g.standard_normal((n_in, n_out), dtype=np.float32) * np.float32(np.sqrt(2 / n_in)),
        b=g.standard_normal(n_out, dtype=np.float32),
        dA=g.standard_normal((m, n_out), dtype=np.float32))
    f = arrays["fastnn"]
    A = kc.dense_forward(f["X"], f["W"], f["b"], "relu")
    grads = kc.dense_backward(f["dA"], f["X"], f["W"], A, "relu")

    def run_fastnn():
        kc.dense_forward(f["X"], f["W"], f["b"], "relu", out=A)
        kc.dense_backward(f["dA"], f["X"], f["W"], A, "relu", out=grads)

    def explicit(a):
        def run():
            Z = a["X"] @ a["W"] + a["b"]
            A = Z * (Z > 0)
            dZ = a["dA"] * (A > 0)
            return dZ @ a["W"].T, a["X"].T @ dZ, dZ.sum(0)
        return run

    others = {name: explicit(a) for name, a in arrays.items() if name != "fastnn"}
    return Case("dense relu fwd+bwd", (m, n_in, n_out), run_fastnn, others,
                flops=3 * 2.0 * m * n_in * n_out)


def batchnorm_case(m, n, libs, seed=0):
    """Batch normalization in training, forward (running statistics updated) and backward."""
    import fastnn.kernels.cuda as kc

    g = np.random.default_rng(seed)
    arrays = _device_arrays(
        libs, X=g.standard_normal((m, n), dtype=np.float32) * np.float32(2) + np.float32(1),
        gamma=np.ones(n, np.float32), beta=np.zeros(n, np.float32),
        rm=np.zeros(n, np.float32), rv=np.ones(n, np.float32),
        dY=g.standard_normal((m, n), dtype=np.float32))
    f = arrays["fastnn"]
    Y, cache = kc.batchnorm_forward(f["X"], f["gamma"], f["beta"], f["rm"], f["rv"])
    grads = kc.batchnorm_backward(f["dY"], cache)

    def run_fastnn():
        _, cache = kc.batchnorm_forward(f["X"], f["gamma"], f["beta"], f["rm"], f["rv"], out=Y)
        kc.batchnorm_backward(f["dY"], cache, out=grads)

    others = {}
    if "torch" in libs:
        torch, t = libs["torch"], arrays["torch"]
        X, gamma, beta = (t[k].clone().requires_grad_() for k in ("X", "gamma", "beta"))

        def run_torch():
            X.grad = gamma.grad = beta.grad = None
            torch.nn.functional.batch_norm(X, t["rm"], t["rv"], gamma, beta, training=True,
                                           momentum=0.1).backward(t["dY"])
        others["torch"] = run_torch
    if "cupy" in libs:
        c = arrays["cupy"]

        def run_cupy():
            X, dY = c["X"], c["dY"]
            mean, var = X.mean(0), X.var(0)
            invstd = 1 / (var + 1e-5) ** 0.5
            xhat = (X - mean) * invstd
            _ = xhat * c["gamma"] + c["beta"]
            c["rm"] *= 0.9
            c["rm"] += 0.1 * mean
            c["rv"] *= 0.9
            c["rv"] += 0.1 * var * (m / (m - 1))
            dbeta, dgamma = dY.sum(0), (dY * xhat).sum(0)
            return (c["gamma"] * invstd / m) * (m * dY - dbeta - xhat * dgamma), dgamma, dbeta
        others["cupy"] = run_cupy
    # forward reads X twice and writes Y; backward reads X and dY twice and writes dX
    return Case("batchnorm fwd+bwd", (m, n), run_fastnn, others, nbytes=8.0 * m * n * 4)


def _logits(m, c, libs, seed):
    g = np.random.default_rng(seed)
    return _device_arrays(libs, Z=g.standard_normal((m, c), dtype=np.float32) * np.float32(3),
                          y=g.integers(0, c, m))


def cross_entropy_case(m, c, libs, seed=0):
    """Softmax cross-entropy against class labels: loss (reduced on the device) and dZ."""
    import fastnn.kernels.cuda as kc

    arrays = _logits(m, c, libs, seed)
    f = arrays["fastnn"]
    _, dZ = kc.softmax_cross_entropy(f["Z"], f["y"])
    others = {}
    if "torch" in libs:
        torch, t = libs["torch"], arrays["torch"]
        Z = t["Z"].clone().requires_grad_()

        def run_torch():
            Z.grad = None
            torch.nn.functional.cross_entropy(Z, t["y"]).backward()
        others["torch"] = run_torch
    if "cupy" in libs:
        cp, a = libs["cupy"], arrays["cupy"]

        def run_cupy():
            Z, y = a["Z"], a["y"]
            shifted = Z - Z.max(1, keepdims=True)
            logp = shifted - cp.log(cp.exp(shifted).sum(1, keepdims=True))
            loss = -logp[cp.arange(m), y].mean()
            dZ = cp.exp(logp)
            dZ[cp.arange(m), y] -= 1
            return float(loss), dZ / m
        others["cupy"] = run_cupy
    return Case("softmax-CE fwd+bwd", (m, c),
                lambda: kc.softmax_cross_entropy(f["Z"], f["y"], out=dZ), others,
                nbytes=2.0 * m * c * 4)


def softmax_case(m, c, libs, seed=0):
    import fastnn.kernels.cuda as kc

    arrays = _logits(m, c, libs, seed)
    f = arrays["fastnn"]
    P = kc.softmax(f["Z"])
    others = {}
    if "torch" in libs:
        others["torch"] = lambda: libs["torch"].softmax(arrays["torch"]["Z"], 1)
    if "cupy" in libs:
        cp, Z = libs["cupy"], arrays["cupy"]["Z"]

        def run_cupy():
            e = cp.exp(Z - Z.max(1, keepdims=True))
            return e / e.sum(1, keepdims=True)
        others["cupy"] = run_cupy
    return Case("softmax", (m, c), lambda: kc.softmax(f["Z"], out=P), others,
                nbytes=2.0 * m * c * 4)


def adam_case(n, libs, seed=0):
    """One Adam step over a flat buffer of n parameters (p, g, m, v read; p, m, v written)."""
    import fastnn.kernels.cuda as kc

    g = np.random.default_rng(seed)
    arrays = _device_arrays(libs, p=g.standard_normal(n, dtype=np.float32),
                            g=g.standard_normal(n, dtype=np.float32),
                            m=np.zeros(n, np.float32), v=np.zeros(n, np.float32))
    f = arrays["fastnn"]
    lr, beta1, beta2, eps, t = 1e-6, 0.9, 0.999, 1e-8, 10
    others = {}
    if "torch" in libs:
        torch = libs["torch"]
        p = torch.nn.Parameter(arrays["torch"]["p"].clone())
        p.grad = arrays["torch"]["g"]
        try:
            opt = torch.optim.Adam([p], lr=lr, betas=(beta1, beta2), eps=eps, fused=True)
        except (RuntimeError, TypeError):  # a PyTorch without the fused CUDA Adam
            opt = torch.optim.Adam([p], lr=lr, betas=(beta1, beta2), eps=eps, foreach=True)
        others["torch"] = opt.step
    if "cupy" in libs:
        cp, a = libs["cupy"], arrays["cupy"]

        def run_cupy():
            a["m"] *= beta1
            a["m"] += (1 - beta1) * a["g"]
            a["v"] *= beta2
            a["v"] += (1 - beta2) * a["g"] * a["g"]
            a["p"] -= (lr / (1 - beta1 ** t)) * a["m"] / (
                cp.sqrt(a["v"] / (1 - beta2 ** t)) + eps)
        others["cupy"] = run_cupy
    return Case("adam update", (n,),
                lambda: kc.adam_update(f["p"], f["g"], f["m"], f["v"], t, lr, beta1, beta2, eps),
                others, nbytes=7.0 * n * 4)


def dropout_case(m, n, libs, seed=0, rate=0.5):
    """Inverted dropout forward: Y and the mask (fastnn's states advance between calls)."""
    import fastnn.kernels.cuda as kc
    from numba.cuda.random import create_xoroshiro128p_states

    g = np.random.default_rng(seed)
    arrays = _device_arrays(libs, X=g.standard_normal((m, n), dtype=np.float32))
    f = arrays["fastnn"]
    states = create_xoroshiro128p_states(config.CUDA_MAX_BLOCKS * config.CUDA_THREADS_PER_BLOCK,
                                         seed=seed)
    outputs = kc.dropout_forward(f["X"], rate, states)
    others = {}
    if "torch" in libs:
        torch, tX = libs["torch"], arrays["torch"]["X"]
        others["torch"] = lambda: torch.nn.functional.dropout(tX, rate, training=True)
    if "cupy" in libs:
        cp, cX = libs["cupy"], arrays["cupy"]["X"]

        def run_cupy():
            mask = (cp.random.random_sample(cX.shape, dtype=np.float32) >= rate).astype(cX.dtype)
            return cX * mask / (1 - rate), mask
        others["cupy"] = run_cupy
    # reads X, writes Y and the mask
    return Case("dropout fwd", (m, n), lambda: kc.dropout_forward(f["X"], rate, states,
                                                                  out=outputs),
                others, nbytes=3.0 * m * n * 4)


def training_step_case(batch, libs, widths=None):
    """One training step (forward, loss, backward, Adam) of the 784-256-256-10 MLP with batch
    norm and ReLU, model and data on the GPU (``fastnn.bench.mlp_step`` on backend "cuda"),
    against the same step in PyTorch CUDA (eager). ``widths``: other layer widths (tests)."""
    from fastnn import bench

    widths = widths or bench.MLP_WIDTHS
    others = {}
    if "torch" in libs:
        others["torch"] = bench.torch_mlp_step(batch, libs["torch"], widths=widths, device="cuda")
    return Case("MLP train step", (batch, *widths), bench.mlp_step(batch, "cuda", widths=widths),
                others, flops=bench.mlp_step_flops(batch, widths))


def cases(libs, quick=False):
    """The rows: small shapes (a training step's layers at batch 64), the issue's large ones, and
    the training steps at ``TRAINING_STEP_BATCHES`` (see ``training_step_case``)."""
    rows = [dense_case(64, 784, 256, libs), batchnorm_case(64, 256, libs),
            cross_entropy_case(64, 10, libs), softmax_case(64, 10, libs),
            batchnorm_case(4096, 1024, libs), cross_entropy_case(4096, 1000, libs),
            adam_case(270_346, libs), dropout_case(64, 256, libs)]
    if not quick:
        rows += [dense_case(4096, 1024, 1024, libs), batchnorm_case(65536, 256, libs),
                 cross_entropy_case(65536, 100, libs), softmax_case(4096, 1000, libs),
                 adam_case(4_000_000, libs), dropout_case(4096, 1024, libs)]
    return rows + [training_step_case(batch, libs) for batch in TRAINING_STEP_BATCHES]


# --- the table -----------------------------------------------------------------------------------

def _throughput(case, seconds, limits):
    bandwidth, gflops = limits
    if case.flops:
        rate = case.flops / seconds / 1e9
        share = f"({rate / gflops:4.0%})" if gflops else "(  - )"
        return f"{rate:8.1f} GFLOP/s {share}"
    rate = case.nbytes / seconds / 1e9
    return f"{rate:8.1f} GB/s    ({rate / bandwidth:4.0%})"


def run(quick=False, out=print):
    """Measure every case on this GPU and print the table; returns the rows as dicts
    (kernel, shape, and seconds per call for "fastnn" and each library compared)."""
    require_real_gpu()
    libs = libraries()
    limits = (copy_bandwidth(libs), sgemm_gflops(libs))
    sgemm = f"{limits[1]:.0f} GFLOP/s" if limits[1] else "n/a (neither PyTorch nor CuPy)"
    out(f"fastnn bench_cuda on {device_name()}: float32, device arrays, times in ms per call; "
        f"compared with: {', '.join(libs) or 'nothing (install cupy or torch with CUDA)'}")
    out(f"limits measured now: device-to-device copy {limits[0]:.0f} GB/s, cuBLAS sgemm 4096^3 "
        f"(TF32 off) {sgemm}")
    header = (f"{'kernel':<20}{'shape':<18}{'fastnn ms':>10}{'cupy ms':>10}{'torch ms':>10}"
              f"{'best/fastnn':>12}  fastnn throughput (% of limit)")
    out(header)
    out("-" * len(header))
    rows = []
    for case in cases(libs, quick):
        t = {"fastnn": median_seconds(case.fastnn, libs)}
        t.update({lib: median_seconds(fn, libs) for lib, fn in case.others.items()})
        cells = "".join(f"{t[lib] * 1e3:10.3f}" if lib in t else f"{'-':>10}"
                        for lib in ("cupy", "torch"))
        best = min((t[lib] for lib in case.others), default=None)
        ratio = f"{best / t['fastnn']:11.2f}x" if best else f"{'-':>12}"
        out(f"{case.kernel:<20}{'x'.join(map(str, case.shape)):<18}{t['fastnn'] * 1e3:10.3f}"
            f"{cells}{ratio}  {_throughput(case, t['fastnn'], limits)}")
        rows.append(dict(kernel=case.kernel, shape=case.shape, **t))
    return rows
