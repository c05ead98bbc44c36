"""fastnn's one benchmark harness, used by ``python -m fastnn bench`` and the asv suite
(``benchmarks/``).

- ``timing``: the median seconds of a call; implementations timed in interleaved rounds, with an
  optional device synchronization; ratios as medians of the rounds' ratios.
- ``peers``: the implementations by name (fastnn's "numpy", "cpu", "cuda"; PyTorch, CuPy and JAX
  where importable) and where their arrays go.
- ``cases``: each kernel workload, defined once, with a closure for every implementation;
  ``mlp``: the MLP training step, likewise.
- ``machine``: this machine's limits (matmul GFLOP/s, memory GB/s), CPU and GPU; ``busy_core``,
  the load of ``bench --loaded``.
- ``tables``: the CPU table (``run``) and the GPU table (``run_cuda``).
- ``cluster``: a distributed search's trials per minute on 1, 2 and 4 Dask workers with a
  PostgreSQL storage, and its per-trial overheads (scheduling, storage, model transfer)
  (``run_search_throughput``, ``bench --search``); not imported here (it needs fastnn[tune]).
- ``services``: throwaway servers for it and for the cluster tests: PostgreSQL, a Dask cluster
  of separate processes, hosts of their own (network namespaces).
"""
from fastnn.bench.mlp import MLP_WIDTHS, mlp_step, mlp_step_flops, torch_mlp_step
from fastnn.bench.tables import require_real_gpu, run, run_cuda
from fastnn.bench.timing import interleaved, ratio

__all__ = ["MLP_WIDTHS", "interleaved", "mlp_step", "mlp_step_flops", "ratio",
           "require_real_gpu", "run", "run_cuda", "torch_mlp_step"]
