"""Babysitting one model ("panda"): train it epoch by epoch while watching its learning curve,
change the optimizer's hyperparameters between epochs without restarting, checkpoint every
epoch, and resume from any checkpoint::

    sitter = Babysitter(build_mlp((128,), 10), optim.Adam(3e-3), out="run1")
    sitter.train(X, y, epochs=30, validation_data=(X_val, y_val))
    # meanwhile, from another terminal:  echo '{"lr": 0.001}' > run1/control.json
    # later, from any checkpoint (training goes on from its epoch, and overwrites what follows):
    sitter = Babysitter.resume("run1/checkpoints/epoch-0012.npz")
    sitter.train(X, y, epochs=30, validation_data=(X_val, y_val))

Epoch e (0-based) is one ``model.fit(X, y, epochs=1, seed=derive_seed(seed, e))`` with the same
optimizer object, whose state (moments, step count) carries over: a run resumed from the
checkpoint written after epoch e continues exactly as the run that was not stopped (the same
shuffles, dropout masks and optimizer state), bit for bit.

Files in ``out``: ``curve.csv`` (one row per epoch: loss, accuracy, val_loss, val_accuracy and the
optimizer's hyperparameters), ``curve.png`` (redrawn every epoch), ``checkpoints/epoch-NNNN.npz``
(``model.save``: weights, running statistics, optimizer state and hyperparameters, after epoch
NNNN) with ``epoch-NNNN.json`` (the epoch, the settings, the history and the changes made), and
``control.json``, which you write: before every epoch, if it changed, its hyperparameters are
set ({"lr": 0.001, "beta1": 0.95}) and {"stop": true} ends training after a checkpoint.
"""
import contextlib
import csv
import hashlib
import json
import math
import numbers
import os
import re
import warnings

try:
    import fcntl
except ImportError:  # Windows: no folder lock
    fcntl = None

from tqdm.auto import tqdm

from fastnn import optim
from fastnn.files import atomic_write
from fastnn.nn import BatchNorm, History, load
from fastnn.tune.space import derive_seed

__all__ = ["Babysitter", "ControlFile", "FolderInUseError"]

#: The lock file a training Babysitter holds in its ``out`` folder.
LOCK = ".babysitter.lock"


class FolderInUseError(RuntimeError):
    """Another Babysitter is training into the same ``out`` folder (it holds the folder's lock):
    two runs would overwrite each other's checkpoints and curve."""


def _integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_settings(fn, model, batch_size, l2):
    """ValueError unless batch_size is an integer >= 1 (>= 2 for a model with BatchNorm) and l2
    a finite number >= 0."""
    low = 2 if any(isinstance(layer, BatchNorm) for layer in getattr(model, "layers", ())) else 1
    if not _integer(batch_size) or batch_size < low:
        why = " (the model has BatchNorm: batch statistics need 2 rows)" if low == 2 else ""
        raise ValueError(f"{fn}: batch_size must be an integer >= {low}{why}, got "
                         f"{batch_size!r}")
    if not (_real(l2) and math.isfinite(l2) and l2 >= 0):
        raise ValueError(f"{fn}: l2 must be a finite number >= 0, got {l2!r}")


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Babysitter:
    """Trains ``model`` with ``optimizer`` (an optimizer object, or a name as in ``fit``: then
    lr 1e-3) one epoch at a time, writing the curve and a checkpoint into ``out`` after each.

    batch_size, l2: as in ``fit``. seed: epoch e shuffles with ``derive_seed(seed, e)`` (and a
    model not yet built is initialized with epoch 0's). hooks: callables ``hook(sitter, epoch)``
    run before each epoch, which may call ``sitter.set(...)`` or ``sitter.stop()`` (e.g. a
    schedule: ``lambda s, e: s.set(lr=schedule(e))``); ``out/control.json`` is always watched
    (``ControlFile``). plot: redraw ``curve.png`` every epoch. verbose: a progress bar over
    epochs with loss, accuracy, validation accuracy and lr.
    Attributes: ``epoch`` (epochs done), ``history`` (a ``fastnn.nn.History``), ``changes`` (the
    hyperparameters set, with the epoch from which they apply).
    """

    def __init__(self, model, optimizer="adam", *, out="babysit", batch_size=64, l2=0.0, seed=0,
                 hooks=(), plot=True, verbose=True):
        optimizer = optim.get(optimizer, "Babysitter")
        derive_seed(seed)  # checks the seed
        _check_settings("Babysitter", model, batch_size, l2)
        self.model, self.optimizer, self.out = model, optimizer, out
        self.batch_size, self.l2, self.seed = batch_size, l2, seed
        self.hooks, self.plot, self.verbose = list(hooks), plot, verbose
        self.epoch, self.history, self.changes = 0, History(), []
        self._stop = False

    # --- steering ------------------------------------------------------------------------------

    def set(self, **hyperparameters):
        """Set optimizer hyperparameters (e.g. ``lr=1e-3``, ``beta1=0.95``) for the coming
        epochs; each name and value is checked as the optimizer's constructor checks it, all
        before any is set."""
        checks = type(self.optimizer).hyperparameters
        unknown = sorted(set(hyperparameters) - set(checks))
        if unknown:
            raise ValueError(f"Babysitter.set: {type(self.optimizer).__name__} has no "
                             f"hyperparameter {', '.join(unknown)}; it has {', '.join(checks)}")
        values = {k: checks[k]("Babysitter.set", k, v) for k, v in hyperparameters.items()}
        for name, value in values.items():
            setattr(self.optimizer, name, value)
        self.changes.append({"epoch": self.epoch, **values})

    def stop(self):
        """End ``train`` before the next epoch."""
        self._stop = True

    # --- training ------------------------------------------------------------------------------

    def train(self, X, y, epochs, validation_data=None):
        """Train until ``epochs`` epochs are done in all (counting those before a resume), or a
        hook stops it; returns the history of every epoch."""
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
            raise ValueError(f"Babysitter.train: epochs must be an integer >= 0 (the total "
                             f"number of epochs), got {epochs!r}")
        os.makedirs(os.path.join(self.out, "checkpoints"), exist_ok=True)
        hooks = [ControlFile(os.path.join(self.out, "control.json")), *self.hooks]
        self._stop = False
        with self._lock(), tqdm(total=epochs, initial=min(self.epoch, epochs), unit="epoch",
                  disable=not self.verbose) as bar:
            while self.epoch < epochs:
                for hook in hooks:
                    hook(self, self.epoch)
                if self._stop:
                    break
                history = self.model.fit(X, y, epochs=1, batch_size=self.batch_size,
                                         optimizer=self.optimizer, l2=self.l2,
                                         validation_data=validation_data,
                                         seed=derive_seed(self.seed, self.epoch), verbose=False)
                logs = {key: values[0] for key, values in history.history.items()}
                logs.update((k, float(getattr(self.optimizer, k)))
                            for k in type(self.optimizer).hyperparameters)
                self.history.append(self.epoch, logs)
                self.epoch += 1
                self.checkpoint()
                self._write_curve()
                bar.update(1)
                bar.set_postfix({k: f"{logs[k]:.4g}" for k in
                                 ("loss", "accuracy", "val_accuracy", "lr") if k in logs})
        return self.history

    # --- files ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self):
        """Hold ``out``'s lock (``FolderInUseError`` when another Babysitter holds it)."""
        if fcntl is None:
            yield
            return
        path = os.path.join(self.out, LOCK)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
                raise FolderInUseError(
                    f"Babysitter.train: the folder {self.out!r} is in use by another Babysitter"
                    f"{f' (process {holder})' if holder else ''}: two runs in one folder would "
                    f"overwrite each other's checkpoints; pass another out") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the lock

    def checkpoint_path(self, epoch):
        """The checkpoint written after ``epoch`` epochs (model file; the .json beside it)."""
        return os.path.join(self.out, "checkpoints", f"epoch-{epoch:04d}.npz")

    def checkpoint(self):
        """Write the checkpoint of the current epoch; returns its path."""
        path = self.checkpoint_path(self.epoch)
        self.model.save(path)
        # the model file's hash binds the pair: a kill between the two writes leaves a .json
        # that resume finds is not this model's
        info = {"epoch": self.epoch, "batch_size": self.batch_size, "l2": self.l2,
                "seed": self.seed, "history": {"epoch": self.history.epoch,
                                               **self.history.history},
                "changes": self.changes, "model_sha256": _sha256(path)}
        with atomic_write(path[:-len(".npz")] + ".json", "w") as f:
            json.dump(info, f, indent=1)
        return path

    @classmethod
    def resume(cls, checkpoint, *, out=None, hooks=(), plot=True, verbose=True):
        """The Babysitter as it was when ``checkpoint`` (an epoch-NNNN.npz) was written: model,
        optimizer state and hyperparameters, epoch, history and settings. out: where to go on
        writing (default: the run's folder, the checkpoint's grandparent; a checkpoint that is
        not in a ``checkpoints`` folder needs ``out``). The checkpoint and its .json are checked
        to be a pair, and the .json's content (ValueError naming the file)."""
        fn = "Babysitter.resume"
        checkpoint = os.fspath(checkpoint)
        match = re.fullmatch(r"epoch-(\d+)\.npz", os.path.basename(checkpoint))
        info_path = checkpoint[:-len(".npz")] + ".json" if match else None
        if info_path is None or not os.path.isfile(info_path):
            raise ValueError(f"{fn}: checkpoint must be an epoch-NNNN.npz written by "
                             f"Babysitter, with its .json beside it, got {checkpoint!r}")
        folder = os.path.dirname(os.path.abspath(checkpoint))
        if out is None:
            if os.path.basename(folder) != "checkpoints":
                raise ValueError(f"{fn}: {checkpoint!r} is not in the checkpoints folder of a "
                                 f"run, so where to go on writing is unknown; pass out=FOLDER")
            out = os.path.dirname(folder)
        model = load(checkpoint)
        info = _read_info(info_path)
        if info["epoch"] != int(match[1]):
            raise ValueError(f"{fn}: {info_path} is for epoch {info['epoch']}, not the "
                             f"{int(match[1])} of its file name: it is not this checkpoint's")
        if "model_sha256" in info and info["model_sha256"] != _sha256(checkpoint):
            raise ValueError(f"{fn}: {checkpoint} and {info_path} are not a pair (the .json was "
                             f"written with another model file: a run killed between writing "
                             f"the two?); resume from an earlier checkpoint")
        try:
            _check_settings(fn, model, info["batch_size"], info["l2"])
            derive_seed(info["seed"])
            checks = type(model.optimizer).hyperparameters
            for change in info["changes"]:
                if not (isinstance(change, dict) and _integer(change.get("epoch"))
                        and 0 <= change["epoch"] <= info["epoch"]):
                    raise ValueError(f"a change {change!r} lacks an epoch in [0, "
                                     f"{info['epoch']}]")
                for name, value in change.items():
                    if name == "epoch":
                        continue
                    if name not in checks:
                        raise ValueError(f"a change sets {name!r}, which "
                                         f"{type(model.optimizer).__name__} does not have")
                    checks[name](fn, name, value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{fn}: {info_path} is damaged: {error}") from None
        sitter = cls(model, model.optimizer, out=out, batch_size=info["batch_size"],
                     l2=info["l2"], seed=info["seed"], hooks=hooks, plot=plot, verbose=verbose)
        history = info["history"]
        for i, epoch in enumerate(history.pop("epoch")):
            sitter.history.append(epoch, {k: v[i] for k, v in history.items()})
        sitter.epoch, sitter.changes = info["epoch"], info["changes"]
        return sitter

    def _write_curve(self):
        keys = list(self.history.history)
        with atomic_write(os.path.join(self.out, "curve.csv"), "w") as f:
            writer = csv.writer(f)
            writer.writerow(["epoch", *keys])
            for i, epoch in enumerate(self.history.epoch):
                writer.writerow([epoch + 1, *(self.history[k][i] for k in keys)])
        if self.plot:
            from fastnn.tune.plots import plot_curve

            plot_curve(self.history, os.path.join(self.out, "curve.png"), self.changes)


#: The keys of a checkpoint's .json file.
INFO_KEYS = ("epoch", "batch_size", "l2", "seed", "history", "changes")


def _read_info(path):
    """A checkpoint's .json, checked: ValueError naming the file if it is damaged."""
    fn = "Babysitter.resume"
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError) as error:
        raise ValueError(f"{fn}: {path} is not valid JSON ({error})") from None
    if not isinstance(info, dict):
        raise ValueError(f"{fn}: {path} is not a JSON object")
    for key in INFO_KEYS:
        if key not in info:
            raise ValueError(f"{fn}: {path} lacks {key!r}: it is damaged or not a Babysitter "
                             f"checkpoint's")
    history, epoch = info["history"], info["epoch"]
    if (not _integer(epoch) or epoch < 0 or not isinstance(history, dict)
            or not isinstance(history.get("epoch"), list)
            or not all(isinstance(v, list) and len(v) == len(history["epoch"])
                       for v in history.values())
            or not isinstance(info["changes"], list)
            or history["epoch"] != list(range(epoch))
            or not all(_real(x) for key, v in history.items() if key != "epoch" for x in v)):
        raise ValueError(f"{fn}: {path} is damaged: its epoch, history or changes do not fit "
                         f"together (a history of numbers, one per epoch before {epoch!r})")
    return info


class ControlFile:
    """A hook that applies a JSON file of hyperparameters before an epoch when its content has
    changed since it was last read (its content at the start applies too): {"lr": 0.001} sets lr;
    {"stop": true} stops training. A file that cannot be read or applied gives a warning and
    changes nothing (a typo does not end a long run)."""

    def __init__(self, path):
        self.path, self._seen = path, None

    def __call__(self, sitter, epoch):
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return
        except OSError as error:  # a folder, no permission: say so once
            data = repr(error).encode()
            if data != self._seen:
                self._seen = data
                warnings.warn(f"{self.path} not applied before epoch {epoch + 1}: cannot read "
                              f"it ({error.strerror or error})", stacklevel=2)
            return
        if data == self._seen:
            return
        self._seen = data
        try:
            changes = json.loads(data.decode("utf-8"))
            if not isinstance(changes, dict):
                raise ValueError(f"expected a JSON object such as {{\"lr\": 0.001}}, got "
                                 f"{changes!r}")
            stop = changes.pop("stop", False)
            if not isinstance(stop, bool):
                raise ValueError(f"stop must be true or false, got {stop!r}")
            if changes:
                sitter.set(**changes)
        except (TypeError, ValueError) as error:
            warnings.warn(f"{self.path} not applied before epoch {epoch + 1}: {error}",
                          stacklevel=2)
            return
        if stop:
            sitter.stop()
