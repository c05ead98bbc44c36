"""Saving and loading models: an .npz archive of plain arrays with a JSON header (no pickle).

``save`` writes the file whole or not at all (``fastnn.files.atomic_write``). ``load`` does not
trust the file: it reads only the members the declared architecture needs, each after checking its
declared shape, dtype and size against that architecture and against the archive, so that a small
file cannot make it allocate much.
"""
import json
import math
import os
import stat
import zipfile
import zlib

import numpy as np

from fastnn import backend as _backend
from fastnn import optim
from fastnn.files import atomic_write
from fastnn.nn.layers import LAYERS
from fastnn.nn.model import Sequential

FORMAT = "fastnn-model-1"


def save(model, path):
    """Write ``model``'s architecture, parameters, running statistics and optimizer state to
    ``path``, exactly that name (no suffix is added): a NumPy .npz archive of plain arrays and a
    JSON header, no pickle. The file is written whole or not at all (a temporary file in the
    same folder, fsynced, then renamed over ``path``): a process killed while saving leaves the
    previous file."""
    model._require_built("save")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"Sequential.save: {path} is a folder; give a file name")
    header = {"format": FORMAT, "loss": model.loss, "dtype": model.dtype.name,
              "n_features": model.n_features,
              "layers": [[type(layer).__name__, layer.config()] for layer in model.layers]}
    with model._lock:  # one consistent state, between two training steps
        flat, states = model.get_weights()
        arrays = {"params": flat}
        for i, state in enumerate(states):
            for key, value in state.items():
                arrays[f"layer{i}.{key}"] = value
        if model.optimizer is not None:
            values = model.optimizer.state_dict()  # plain values, "state": {name: [arrays]}
            state = values.pop("state")
            header["optimizer"] = {"values": values, "state": {
                name: len(arrays_) for name, arrays_ in state.items()}}
            for name, arrays_ in state.items():
                for j, array in enumerate(arrays_):
                    arrays[f"optimizer.{name}.{j}"] = array
    with atomic_write(path) as f:
        np.savez(f, header=np.array(json.dumps(header)), **arrays)


#: Bounds on what ``load`` reads from a file before trusting it: the JSON header's size, and
#: how much larger than its stored bytes a member may declare itself (deflate stays under 1:1032).
MAX_HEADER_BYTES = 1 << 20
MAX_EXPANSION = 1100


class _Damaged(ValueError):
    """Raised inside ``load`` for a file whose contents are wrong; ``load`` names the file."""


def load(path, backend=None):
    """Load a model written by ``Sequential.save`` onto ``backend`` (default: the default
    backend).

    The file is not trusted: only the members a model of the declared architecture needs are
    read, each after its declared shape, dtype and size agree with that architecture and with
    the archive (a member may not expand more than deflate can), so a small file cannot make
    ``load`` allocate much; values must be finite. A file that is not a fastnn model, is
    truncated or damaged raises ValueError (a missing file: FileNotFoundError); an unknown
    backend is named before the file is read.
    """
    _backend.get(backend)  # ValueError (unknown) or RuntimeError (no GPU) before any reading
    path_name = os.fspath(path)
    if not stat.S_ISREG(os.stat(path_name).st_mode):  # (FileNotFoundError when missing)
        raise ValueError(f"load: {path_name} is not a regular file (a folder, pipe or device)")
    with open(path_name, "rb") as file:
        try:
            with zipfile.ZipFile(file) as archive:
                return _load_model(archive, backend)
        except _Damaged as error:
            raise ValueError(f"load: {path_name} is not a fastnn model file, or it is truncated "
                             f"or damaged ({error})") from None
        except zipfile.BadZipFile as error:
            raise ValueError(f"load: {path_name} is not a fastnn model file or it is truncated "
                             f"(not a readable zip archive: {error})") from None
        except (OSError, EOFError, zlib.error, NotImplementedError) as error:
            # (reading a file that is open: what fails is the archive's contents)
            raise ValueError(f"load: {path_name} is truncated or damaged "
                             f"({type(error).__name__}: {error})") from None


def _load_model(archive, backend):
    """The model in an open archive; raises _Damaged for anything wrong in it."""
    header = _read_member(archive, "header", (), None)
    try:
        header = json.loads(str(header))
    except ValueError as error:
        raise _Damaged(f"the header is not JSON: {error}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        got = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise _Damaged(f"format {got!r}, expected {FORMAT!r}")
    layer_list = header.get("layers")
    if not isinstance(layer_list, list) or not all(
            isinstance(e, list) and len(e) == 2 and e[0] in LAYERS and isinstance(e[1], dict)
            for e in layer_list):
        raise _Damaged(f"the header's layers must be [[layer name, {{arguments}}], ...] with "
                       f"names in {sorted(LAYERS)}")
    try:
        layers = [LAYERS[name](**config) for name, config in layer_list]
        model = Sequential(layers, loss=header.get("loss"), dtype=header.get("dtype"),
                           backend=backend)
    except (TypeError, ValueError) as error:
        raise _Damaged(f"the header's architecture is invalid: {error}") from None
    n_features = header.get("n_features")
    if not isinstance(n_features, int) or isinstance(n_features, bool) or n_features < 1:
        raise _Damaged(f"n_features must be an integer >= 1, got {n_features!r}")
    size = model._n_params(n_features)
    params = _read_member(archive, "params", (size,), model.dtype)  # sizes checked: now build
    optimizer, optimizer_state = _optimizer_from_header(archive, header, size, model.dtype,
                                                        backend)
    model.build(n_features)
    states = [{key: _read_member(archive, f"layer{i}.{key}", value.shape, model.dtype)
               for key, value in layer.state().items()} for i, layer in enumerate(model.layers)]
    try:
        model.set_weights((params, states))
        if optimizer is not None:
            optimizer.load_state_dict(optimizer_state)
    except (TypeError, ValueError) as error:
        raise _Damaged(str(error)) from None
    model.optimizer = optimizer
    return model


def _optimizer_from_header(archive, header, size, dtype, backend):
    """(optimizer, its state_dict) from the header and archive, or (None, None)."""
    if "optimizer" not in header:
        return None, None
    info = header["optimizer"]
    classes = {cls.__name__: cls for cls in optim.OPTIMIZERS.values()}
    if (not isinstance(info, dict) or not isinstance(info.get("values"), dict)
            or not isinstance(info.get("state"), dict)
            or info["values"].get("optimizer") not in classes):
        raise _Damaged(f"the optimizer entry must name one of {sorted(classes)} with its values "
                       f"and state")
    cls = classes[info["values"]["optimizer"]]
    counts = info["state"]
    if set(counts) != set(cls.state_names) or any(n not in (0, 1) for n in counts.values()):
        raise _Damaged(f"{cls.__name__} keeps the state {list(cls.state_names)}, one array each "
                       f"(or none before the first step), got {counts!r:.80}")
    values = dict(info["values"])
    values["state"] = {name: [_read_member(archive, f"optimizer.{name}.{j}", (size,), dtype)
                              for j in range(n)] for name, n in counts.items()}
    try:
        optimizer = cls(**{k: values.get(k) for k in cls.hyperparameters}, backend=backend)
    except (TypeError, ValueError) as error:
        raise _Damaged(f"the optimizer's values are invalid: {error}") from None
    return optimizer, values


def _read_member(archive, name, shape, dtype):
    """The array ``name`` (member ``name``.npy) of an .npz archive, read only once its declared
    shape and dtype are ``shape`` and ``dtype`` (None: a unicode string of at most
    MAX_HEADER_BYTES) and its sizes in the archive agree with them."""
    try:
        info = archive.getinfo(f"{name}.npy")
    except KeyError:
        raise _Damaged(f"the member {name!r} is missing") from None
    if info.file_size > MAX_EXPANSION * info.compress_size + 4096:
        raise _Damaged(f"the member {name!r} declares {info.file_size} bytes from "
                       f"{info.compress_size} stored bytes")
    with archive.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            got_shape, fortran, got_dtype = read_header(f)
        except ValueError as error:
            raise _Damaged(f"the member {name!r} is not a NumPy array: {error}") from None
        if dtype is None:
            ok = got_dtype.kind == "U" and got_dtype.itemsize <= MAX_HEADER_BYTES
            dtype = got_dtype
        else:
            ok = got_dtype == dtype
        if not ok or got_shape != tuple(shape) or (fortran and len(shape) > 1):
            raise _Damaged(f"the member {name!r} has shape {got_shape} and dtype {got_dtype}, "
                           f"expected shape {tuple(shape)} and dtype "
                           f"{'a short string' if dtype is got_dtype else dtype}")
        n_bytes = math.prod(got_shape) * got_dtype.itemsize
        if info.file_size - f.tell() != n_bytes:
            raise _Damaged(f"the member {name!r} holds {info.file_size - f.tell()} bytes of data "
                           f"for {n_bytes} declared")
        data = f.read(n_bytes)
        if len(data) != n_bytes or f.read(1):  # (reading to the end checks the CRC)
            raise _Damaged(f"the member {name!r} is truncated")
    return np.frombuffer(data, got_dtype).reshape(got_shape)
