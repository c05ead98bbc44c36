"""Every row of ``python -m fastnn bench`` (``fastnn.bench.tables.table_cases()``: each kernel at
a training step's batch-64 shapes and at the issue's large shapes, and the MLP training step at
batch 64 and 512), float32 on the CPU: the time of one call in fastnn's "cpu" kernels, the NumPy
reference, PyTorch (eager; torch.compile on the training steps) and JAX, and each one's time over
fastnn's measured in turns.
"""
from fastnn.bench import peers, tables

from . import common

CASES = {case.label: case for case in tables.table_cases()}


class Kernels(common.CaseTimes):
    """Seconds per call of each case in fastnn's "cpu" kernels, the reference and the peers."""
    params = [list(CASES), ["cpu", *peers.CPU_PEERS]]
    cases = CASES
    check = staticmethod(lambda: None)


class Speedup:
    """Time of the reference's ("numpy"), PyTorch's or JAX's call / fastnn cpu's on the same case,
    measured in one process, in turns (above 1: fastnn is faster)."""
    params = [list(CASES), list(peers.CPU_PEERS)]
    param_names = ["case", "implementation"]
    timeout = 180

    def setup(self, label, impl):
        self.other = common.closure(CASES[label], impl)
        self.cpu = common.closure(CASES[label], "cpu")

    def track_speedup(self, label, impl):
        return common.speedup(self.other, self.cpu)
    track_speedup.unit = "x"
