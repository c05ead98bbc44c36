"""Files written whole or not at all: ``fastnn.files.atomic_write``, and a process killed with
SIGKILL while it saves a model (``Sequential.save``) over and over leaves the old model or the
new one, never a damaged file."""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn.files import atomic_write

ROOT = Path(__file__).resolve().parents[1]


def test_atomic_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"old")
    with atomic_write(path) as f:
        f.write(b"new ")
        assert path.read_bytes() == b"old"  # nothing visible until the block ends
        f.write(b"content")
    assert path.read_bytes() == b"new content"
    with atomic_write(tmp_path / "text.csv", "w") as f:
        f.write("a,b\r\n1,2\n")
    assert (tmp_path / "text.csv").read_bytes() == b"a,b\r\n1,2\n"  # newlines as written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin", "text.csv"]


def test_an_error_in_the_block_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"old")
    with pytest.raises(ZeroDivisionError):
        with atomic_write(path) as f:
            f.write(b"half of the new")
            raise ZeroDivisionError("a bug half-way")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C too
        with atomic_write(tmp_path / "new.csv", "w") as f:
            f.write("x")
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]
    with pytest.raises(ValueError, match="mode must be 'wb' or 'w'"):
        with atomic_write(path, "a"):
            pass


CHILD = textwrap.dedent("""
    import os
    import sys

    from fastnn.nn import Dense, ReLU, Sequential


    def model(width, seed):
        m = Sequential([Dense(width), ReLU(), Dense(10)], backend="numpy")
        m.build(784, seed)
        return m


    path, folder = sys.argv[1], sys.argv[2]
    models = [model(512, 1), model(128, 2)]  # two sizes: a mix of both would not load
    for i, m in enumerate(models):
        m.save(os.path.join(folder, f"ref{i}.npz"))
    models[0].save(path)
    print("ready", flush=True)
    for line in sys.stdin:  # "go": a writer saving both models in turn until killed
        if line.startswith("reap"):
            os.waitpid(pid, 0)
            print("reaped", flush=True)
            continue
        pid = os.fork()
        if pid == 0:
            i = 0
            while True:
                models[i % 2].save(path)
                i += 1
        print(pid, flush=True)
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the writers are forked")
def test_a_model_saved_while_killed_is_the_old_or_the_new_one(tmp_path):
    """25 writers killed with SIGKILL at random moments while saving (a few seconds)."""
    script, path = tmp_path / "child.py", tmp_path / "models" / "model.npz"
    path.parent.mkdir()
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), str(path), str(tmp_path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert child.stdout.readline() == "ready\n"
        refs = [fastnn.load(tmp_path / f"ref{i}.npz").get_weights()[0] for i in (0, 1)]
        seen = []
        rng = random.Random(0)
        for _ in range(25):
            child.stdin.write("go\n")
            child.stdin.flush()
            pid = int(child.stdout.readline())
            # a save takes a few ms: a kill lands before, inside or between them
            time.sleep(rng.uniform(0.005, 0.12))
            os.kill(pid, signal.SIGKILL)
            child.stdin.write("reap\n")
            child.stdin.flush()
            assert child.stdout.readline() == "reaped\n"
            params = fastnn.load(path).get_weights()[0]  # a whole model file ...
            matches = [i for i, ref in enumerate(refs)
                       if params.shape == ref.shape and np.array_equal(params, ref)]
            assert len(matches) == 1  # ... equal to one of the two
            seen.append(matches[0])
        assert set(seen) == {0, 1}  # the kills hit writers in both states
        # what a kill can leave besides the model: temporary files, never a second model name
        assert all(p.name == "model.npz" or p.name.endswith(".tmp")
                   for p in path.parent.iterdir())
    finally:
        child.kill()
        child.wait()


def test_figures_and_the_trials_csv_are_written_whole(tmp_path, monkeypatch):
    """What fastnn writes besides models (learning curves, tune's plots, trials.csv, the
    Babysitter's files) goes through atomic_write: a failure half-way keeps the old file."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fastnn.files import save_figure

    path = tmp_path / "curve.png"
    path.write_bytes(b"old png")
    fig = plt.figure()

    def broken(f, **kwargs):
        f.write(b"\x89PNG half of it")
        raise OSError("disk full")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        save_figure(fig, path)
    assert path.read_bytes() == b"old png" and [p.name for p in tmp_path.iterdir()] == [
        "curve.png"]
    monkeypatch.undo()
    save_figure(fig, path)
    plt.close(fig)
    assert path.read_bytes().startswith(b"\x89PNG")

    pytest.importorskip("optuna")
    from types import SimpleNamespace

    from fastnn.cli.tune import _write_trials
    from fastnn.tune.space import SearchSpace, Uniform

    class Broken:
        def __getattr__(self, name):
            raise OSError("disk full")

    good = SimpleNamespace(number=0, round=1, state="COMPLETE", value=0.5, seconds=1.0,
                           hyperparameters={"x": 0.5}, attrs={}, reason=None)
    result = SimpleNamespace(spaces=[SearchSpace({"x": Uniform(0, 1)})], metric="value",
                             trials=[good, Broken()])
    csv_path = tmp_path / "trials.csv"
    csv_path.write_text("old\n")
    with pytest.raises(OSError, match="disk full"):
        _write_trials(result, csv_path)
    assert csv_path.read_text() == "old\n"
    result.trials = [good]
    _write_trials(result, csv_path)
    assert csv_path.read_text().splitlines()[1].startswith("0,1,COMPLETE,0.5,1.0,0.5,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png", "trials.csv"]
