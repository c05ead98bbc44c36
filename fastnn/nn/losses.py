"""The losses a ``Sequential`` model trains with, by name: what each expects as targets, which
kernel computes it, how the model scores and predicts with it. The model and its training loop
ask the loss (``get``); they hold no per-loss branches.

- "softmax_cross_entropy": multiclass; targets are class ids (n_samples,); the outputs are the
  logits of the classes; metric accuracy (the argmax is the label).
- "sigmoid_cross_entropy" (alias "binary_cross_entropy"): binary (one output) or multi-label (k
  outputs, each its own yes/no); targets 0/1 or probabilities in [0, 1], (n_samples,) for one
  output or (n_samples, k); metric accuracy over every value (a value counts when its logit's
  sign matches target >= 0.5, Keras' binary accuracy).
- "mean_squared_error" (alias "mse"): regression; targets (n_samples,) for one output or
  (n_samples, k); the outputs are the predictions; metric R^2 = 1 - SSE / SST over all outputs
  (scikit-learn's r2_score with multioutput="variance_weighted": its plain score for one output),
  and the mean absolute error where the data is at hand (evaluation).
"""
import numpy as np

from fastnn.kernels.base import to_host
from fastnn.nn import checks


class Loss:
    """One loss. ``name``: its canonical name; ``metric``: the name of its score in ``History``
    and ``evaluate`` ("accuracy" or "r2"); ``classifier``: whether predictions are labels."""
    name = metric = ""
    classifier = True

    def targets(self, fn, y, n_rows, n_outputs, dtype, kernels, device_range=True):
        """y checked for this loss and a model of ``n_outputs`` outputs (``n_rows`` rows), in
        the form its kernel takes (a device array stays on the device for a device backend)."""
        raise NotImplementedError

    def compute(self, k, logits, y, out):
        """(mean loss, dZ) from the backend ``k``'s kernel; ``out`` receives dZ."""
        raise NotImplementedError

    def correct(self, k, logits, y):
        """How many predictions are right (classification; regression: 0), a number the
        backend may defer (CUDA's ``Pending``)."""
        return 0

    def judged(self, n_rows, n_outputs):
        """How many predictions ``correct`` judges on ``n_rows`` rows."""
        return n_rows

    def predict(self, outputs):
        """Predictions from host outputs (n_samples, n_outputs): class ids, 0/1 labels, or
        values ((n_samples,) for one output)."""
        raise NotImplementedError

    def probabilities(self, k, logits):
        """Probabilities from the outputs, on the backend (classification only)."""
        raise NotImplementedError


class SoftmaxCrossEntropy(Loss):
    name, metric = "softmax_cross_entropy", "accuracy"

    def targets(self, fn, y, n_rows, n_outputs, dtype, kernels, device_range=True):
        return checks.labels(fn, y, n_rows, n_outputs, kernels, device_range)

    def compute(self, k, logits, y, out):
        return k.softmax_cross_entropy(logits, y, out=out)

    def correct(self, k, logits, y):
        return k.count_correct(logits, y)

    def predict(self, outputs):
        return np.argmax(outputs, axis=1)

    def probabilities(self, k, logits):
        return k.softmax(logits)


class _ValueTargets(Loss):
    """Losses whose targets are values, one per output: (n_samples, k), or (n_samples,) for one
    output (made (n_samples, 1))."""
    unit_interval = False

    def targets(self, fn, y, n_rows, n_outputs, dtype, kernels, device_range=True):
        return checks.value_targets(fn, y, n_rows, n_outputs, dtype, kernels,
                                    self.unit_interval)

    def compute(self, k, logits, y, out):
        return getattr(k, self.name)(logits, y, out=out)


class SigmoidCrossEntropy(_ValueTargets):
    name, metric = "sigmoid_cross_entropy", "accuracy"
    unit_interval = True

    def correct(self, k, logits, y):
        return k.count_binary_correct(logits, y)

    def judged(self, n_rows, n_outputs):
        return n_rows * n_outputs

    def predict(self, outputs):
        labels = (outputs > 0).astype(np.intp)
        return labels[:, 0] if labels.shape[1] == 1 else labels

    def probabilities(self, k, logits):
        return k.activation_forward(logits, "sigmoid")


class MeanSquaredError(_ValueTargets):
    name, metric = "mean_squared_error", "r2"
    classifier = False

    def predict(self, outputs):
        return outputs[:, 0] if outputs.shape[1] == 1 else outputs


LOSSES = {loss.name: loss for loss in (SoftmaxCrossEntropy(), SigmoidCrossEntropy(),
                                       MeanSquaredError())}
ALIASES = {"binary_cross_entropy": "sigmoid_cross_entropy", "mse": "mean_squared_error"}


def get(name):
    """The loss called ``name`` (or an alias); ValueError listing the names otherwise."""
    loss = LOSSES.get(ALIASES.get(name, name)) if isinstance(name, str) else None
    if loss is None:
        raise ValueError(f"Sequential: unknown loss {name!r}; expected one of "
                         f"{sorted(LOSSES) + sorted(ALIASES)}")
    return loss


def r2_score(mean_loss, target_variance):
    """R^2 = 1 - SSE / SST from the mean squared error and the mean over outputs of the targets'
    variance (the same N on both sides); scikit-learn's convention for constant targets: 1.0
    when the fit is exact, else 0.0."""
    if target_variance > 0:
        return 1.0 - mean_loss / target_variance
    return 1.0 if mean_loss == 0 else 0.0


def target_variance(y):
    """The mean over outputs of the variance of each output's targets (host or device y)."""
    values = np.asarray(to_host(y), dtype=np.float64)
    return float(np.mean(np.var(values.reshape(values.shape[0], -1), axis=0)))
