"""The training-step workload: one step of an MLP with batch norm, ReLU and Adam, in fastnn
(``Sequential.train_on_batch``), PyTorch (eager, autograd, torch.optim.Adam; and the same with the
model and the optimizer's step each under ``torch.compile``, PyTorch's recipe) and JAX (one
``jax.jit`` of jax.value_and_grad and the Adam update).

The model: Dense(no bias) -> BatchNorm -> ReLU for each hidden width, then Dense(classes);
softmax cross-entropy with class labels; Adam with lr 1e-3. The data: random float32 X (batch,
widths[0]) and labels y (batch,) on the implementation's device.
"""
import logging

import numpy as np

from fastnn.bench.cases import DECAY, EPS, F32, Case, workload

#: Layer widths of the benchmarked MLP: 784 inputs, two hidden layers of 256, 10 classes.
MLP_WIDTHS = (784, 256, 256, 10)
#: Parameters of that MLP as a flat buffer, the size of the optimizer rows: weights, biases,
#: batch norm gamma and beta.
MLP_PARAMS = 784 * 256 + 256 * 256 + 256 * 10 + (256 + 256 + 10) + 2 * 2 * 256
LEARNING_RATE = 1e-3


def _data(batch, widths, seed):
    g = np.random.default_rng(seed)
    return dict(X=g.standard_normal((batch, widths[0]), dtype=F32),
                y=g.integers(0, widths[-1], batch))


def mlp_step_flops(batch, widths=MLP_WIDTHS):
    """Floating-point operations of the matrix products of one training step (forward and the
    two backward products per layer)."""
    return 3 * 2.0 * batch * sum(a * b for a, b in zip(widths[:-1], widths[1:]))


@workload
def mlp(batch, widths=MLP_WIDTHS, seed=0):
    """The training step at ``batch`` rows as a ``Case`` ("MLP train step", shape (batch,
    *widths)); its closures return the loss."""
    return Case("MLP train step", (batch, *widths), lambda: _data(batch, widths, seed),
                dict(fastnn=lambda k, a: _fastnn_step(a, widths, seed),
                     torch=lambda torch, a: _torch_step(torch, a.X, a.y, widths, seed),
                     **{"torch-compile": lambda torch, a: _torch_step(torch, a.X, a.y, widths,
                                                                      seed, compiled=True)},
                     jax=lambda jax, a: _jax_step(jax, a, widths, seed)),
                flops=mlp_step_flops(batch, widths))


def mlp_step(batch, backend, seed=0, widths=MLP_WIDTHS):
    """One training step of the MLP on fastnn's ``backend`` ("numpy", "cpu", "cuda": model and
    data on the device) as a closure; it returns (loss, correct count)."""
    return mlp(batch, widths, seed).closure(backend)


def torch_mlp_step(batch, torch, seed=0, widths=MLP_WIDTHS, device="cpu"):
    """The same training step in PyTorch (the module ``torch``) on ``device``."""
    X, y = (torch.from_numpy(a).to(device) for a in _data(batch, widths, seed).values())
    return _torch_step(torch, X, y, widths, seed)


def _fastnn_step(a, widths, seed):
    from fastnn import optim
    from fastnn.nn import BatchNorm, Dense, ReLU, Sequential

    layers = [layer for width in widths[1:-1]
              for layer in (Dense(width, use_bias=False), BatchNorm(), ReLU())]
    model = Sequential(layers + [Dense(widths[-1])], backend=a.device).build(widths[0], seed)
    optimizer = optim.Adam(LEARNING_RATE, backend=a.device)
    return lambda: model.train_on_batch(a.X, a.y, optimizer)


def _torch_step(torch, X, y, widths, seed, compiled=False):
    """The PyTorch step as a closure; ``compiled``: the model's forward and backward and the
    optimizer's step compiled by ``torch.compile`` (the first call compiles)."""
    nn = torch.nn
    torch.manual_seed(seed)
    layers = [layer for n_in, n_out in zip(widths[:-2], widths[1:-1])
              for layer in (nn.Linear(n_in, n_out, bias=False), nn.BatchNorm1d(n_out), nn.ReLU())]
    model = nn.Sequential(*layers, nn.Linear(widths[-2], widths[-1])).to(X.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    forward, update = model, optimizer.step
    if compiled:  # (quiet: dynamo warns that it skips the step's profiler record)
        torch._logging.set_logs(dynamo=logging.ERROR)
        forward, update = torch.compile(model), torch.compile(optimizer.step)

    def step():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(forward(X), y)
        loss.backward()
        update()
        return loss
    return step


def _jax_step(jax, a, widths, seed):
    jnp, tree = jax.numpy, jax.tree_util.tree_map
    g = np.random.default_rng(seed)
    params = [(g.standard_normal((n_in, n_out), dtype=F32) * F32(np.sqrt(2 / n_in)),
               np.ones(n_out, F32), np.zeros(n_out, F32))
              for n_in, n_out in zip(widths[:-2], widths[1:-1])]
    params.append((g.standard_normal(widths[-2:], dtype=F32) * F32(np.sqrt(2 / widths[-2])),
                   np.zeros(widths[-1], F32)))
    stats = [(np.zeros(n, F32), np.ones(n, F32)) for n in widths[1:-1]]

    def loss(params, stats, X, y):
        """Mean cross-entropy, and the batch norm running statistics updated."""
        h, m, new_stats = X, X.shape[0], []
        for (W, gamma, beta), (mean_r, var_r) in zip(params[:-1], stats):
            z = h @ W
            mean, var = z.mean(0), z.var(0)
            new_stats.append((DECAY * mean_r + (1 - DECAY) * mean,
                              DECAY * var_r + (1 - DECAY) * var * (m / (m - 1))))
            h = jax.nn.relu((z - mean) * jax.lax.rsqrt(var + EPS) * gamma + beta)
        W, b = params[-1]
        logp = jax.nn.log_softmax(h @ W + b)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], 1)), new_stats

    @jax.jit
    def step(state, X, y):
        params, m, v, stats, t = state
        (value, stats), grads = jax.value_and_grad(loss, has_aux=True)(params, stats, X, y)
        t = t + 1
        m = tree(lambda m, g: 0.9 * m + 0.1 * g, m, grads)
        v = tree(lambda v, g: 0.999 * v + 0.001 * g * g, v, grads)
        params = tree(lambda p, m, v: p - LEARNING_RATE * (m / (1 - 0.9 ** t))
                      / (jnp.sqrt(v / (1 - 0.999 ** t)) + 1e-8), params, m, v)
        return value, (params, m, v, stats, t)

    zeros = tree(np.zeros_like, params)
    state = [jax.device_put((params, zeros, zeros, stats, F32(0)), a.device)]

    def run():
        value, state[0] = step(state[0], a.X, a.y)
        return jax.block_until_ready(value)
    return run
