"""Training callbacks, called by ``Sequential.fit`` (Keras' protocol, reduced to what is used).

A callback gets ``check_logged(fn, logged)`` before anything changes, ``on_train_begin(model)``,
``on_epoch_end(model, epoch, logs)`` (logs: this epoch's loss, accuracy, val_loss, val_accuracy,
lr) and ``on_train_end(model)``; setting
``model.stop_training = True`` ends training after the current epoch. ``on_epoch_begin`` may change
``model.optimizer``'s hyperparameters (e.g. ``lr``) for the coming epoch.
"""
import math
import numbers


class Callback:
    def check_logged(self, fn, logged):
        """Called by ``fit`` before anything changes, with the names it will log each epoch:
        raise ValueError (naming ``fn``) if the callback needs one that is missing."""

    def on_train_begin(self, model):
        pass

    def on_epoch_begin(self, model, epoch):
        pass

    def on_epoch_end(self, model, epoch, logs):
        pass

    def on_train_end(self, model):
        pass


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs;
    with ``restore_best_weights`` put back the parameters of the best epoch at the end."""

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode=None,
                 restore_best_weights=True):
        if not isinstance(patience, numbers.Integral) or isinstance(patience, bool) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an integer >= 0, got {patience!r}")
        if not isinstance(monitor, str):
            raise TypeError(f"EarlyStopping: monitor must be a logged name such as 'val_loss', "
                            f"got {monitor!r}")
        if not isinstance(min_delta, numbers.Real) or not math.isfinite(min_delta) \
                or min_delta < 0:
            raise ValueError(f"EarlyStopping: min_delta must be a finite number >= 0, got "
                             f"{min_delta!r}")
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        self.mode = mode or ("max" if "acc" in monitor else "min")
        if self.mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}")
        self.restore_best_weights = restore_best_weights

    def check_logged(self, fn, logged):
        if self.monitor not in logged:
            raise ValueError(f"{fn}: EarlyStopping monitors {self.monitor!r}, which is not logged; "
                             f"logged: {', '.join(logged)} (val_* needs validation_data or "
                             "validation_split)")

    def on_train_begin(self, model):
        self.best, self.best_epoch, self.wait, self._best_params = None, None, 0, None
        self.stopped_epoch = None

    def _improved(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, model, epoch, logs):
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping: {self.monitor!r} is not logged; logged: "
                             f"{', '.join(logs)} (val_* needs validation data)")
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._best_params = model.get_weights()
        else:
            self.wait += 1
            if self.wait > self.patience:
                model.stop_training = True
                self.stopped_epoch = epoch

    def on_train_end(self, model):
        if self.restore_best_weights and self._best_params is not None:
            model.set_weights(self._best_params)
