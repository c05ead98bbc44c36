"""One training step of a 784-256-256-10 MLP with batch norm, ReLU and Adam on random float32
data (forward, softmax cross-entropy, backward, one Adam update of every parameter), at batch 64
and 512. "torch" is the same model in PyTorch on the CPU (eager, autograd, torch.optim.Adam)."""
from fastnn.bench import mlp_step, torch_mlp_step

from .common import IMPLEMENTATIONS, speedup, torch_or_skip, warm

BATCHES = [64, 512]


def _step(batch, impl):
    return torch_mlp_step(batch, torch_or_skip()) if impl == "torch" else mlp_step(batch, impl)


class TrainStep:
    """Time of one training step."""
    params = [BATCHES, IMPLEMENTATIONS]
    param_names = ["batch", "implementation"]
    repeat = (2, 10, 2.0)
    timeout = 180

    def setup(self, batch, impl):
        self.step = _step(batch, impl)
        warm(("train", batch, impl), self.step)

    def time_step(self, batch, impl):
        self.step()


class TrainStepSpeedup:
    """Time of the reference backend's step / fastnn cpu's, measured in one process."""
    params = [BATCHES]
    param_names = ["batch"]
    timeout = 180
    other = "numpy"

    def setup(self, batch):
        self.other_step = _step(batch, self.other)  # torch: skipped here when not installed
        self.cpu = _step(batch, "cpu")
        warm(("train", batch, "cpu"), self.cpu)

    def track_speedup(self, batch):
        return speedup(self.other_step, self.cpu)
    track_speedup.unit = "x"


class TrainStepSpeedupVsTorch(TrainStepSpeedup):
    """Time of PyTorch's step / fastnn cpu's, measured in one process."""
    other = "torch"
