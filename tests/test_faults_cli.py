"""``python -m fastnn`` under bad options and faults: every error is one line naming the option,
exit status 2 for a usage error (1 for a failure of the work, 130 for Ctrl-C), found before any
work starts; a missing matplotlib skips the plots with a note."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import cli_fails as fails
from helpers import interruptible

from fastnn.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--epochs", "1", "--hidden", "8", "--quiet", "--no-plot", "--backend", "numpy"]


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if training or a search starts (errors must come before any work)."""
    import fastnn.cli.train

    def work(*args, **kwargs):
        raise AssertionError("work started before the error was found")

    monkeypatch.setattr(fastnn.cli.train, "load_digits", work)
    try:
        import fastnn.cli.tune
    except ImportError:
        return
    monkeypatch.setattr(fastnn.cli.tune, "search", work)


@pytest.fixture
def places(tmp_path):
    (tmp_path / "a_file").write_text("some text, not a database\n" * 40)
    (tmp_path / "folder" / "model.npz").mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize("options, match", [
    (["--out", "{tmp}/a_file"], "^fastnn train: --out: '.*a_file' exists and is not a folder$"),
    (["--out", "{tmp}/a_file/run"], "^fastnn train: --out: cannot write into the folder .*: "
                                    "Not a directory"),
    (["--out", "{tmp}/folder"], "^fastnn train: --out: '.*model.npz' is a folder"),
    (["--out", ""], "^fastnn train: --out: the output folder must be named"),
    (["--epochs", "-1"], "^fastnn train: --epochs: epochs must be an integer >= 0, got -1$"),
    (["--batch-size", "0"], "^fastnn train: --batch-size: batch_size must be an integer >= 1"),
    (["--batch-size", "1"], "^fastnn train: --batch-size: .*>= 2 \\(the model has BatchNorm"),
    (["--hidden", "99999999999"], "^fastnn train: --hidden: a model of .* parameters needs "
                                  "about .* of memory"),
    (["--hidden", "16,x"], "^fastnn train: --hidden must be comma-separated integers"),
    (["--hidden", "0"], "^fastnn train: --hidden: Dense: units must be a positive integer"),
    (["--lr", "-1"], "^fastnn train: --lr: .*lr0 must be a finite number"),
    (["--lr", "nan"], "^fastnn train: --lr: .*got nan$"),
    (["--lr", "inf"], "^fastnn train: --lr: .*got inf$"),
    (["--decay", "-1"], "^fastnn train: --decay: .*decay_rate must be"),
    (["--l2", "-1"], "^fastnn train: --l2: l2 must be a finite number >= 0, got -1.0$"),
    (["--l2", "nan"], "^fastnn train: --l2: .*got nan$"),
    (["--dropout", "1.5"], "^fastnn train: --dropout: Dropout: rate must be in \\[0, 1\\)"),
    (["--dropout", "-0.1"], "^fastnn train: --dropout: .*got -0.1$"),
    (["--seed", "-1"], "^fastnn train: --seed: seed must be an integer in \\[0, 2\\*\\*32\\)"),
    (["--seed", "4294967296"], "^fastnn train: --seed: "),
])
def test_train_options_fail_with_one_line_and_status_2_before_training(places, no_work, options,
                                                                       match):
    options = [o.replace("{tmp}", str(places)) for o in options]
    if "--out" not in options:
        options += ["--out", str(places / "run")]
    fails(["train", *QUICK, *options], match)
    assert not (places / "run").exists()  # nothing written either


def test_argparse_errors_are_one_line_with_status_2(capsys):
    for argv, match in [(["train", "--epochs", "x"], "argument --epochs: invalid int value"),
                        (["train", "--optimizer", "sgdx"], "invalid choice: 'sgdx'"),
                        (["train", "--frobnicate"], "unrecognized arguments: --frobnicate"),
                        ([], "the following arguments are required: command")]:
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and match in err and "see fastnn" in err


def test_backend_cuda_without_a_gpu_fails_before_training(tmp_path, no_work, monkeypatch):
    from fastnn import backend

    real = backend.get

    def no_gpu(name=None):
        if name == "cuda":
            raise RuntimeError("fastnn's CUDA backend cannot run: no NVIDIA driver")
        return real(name)

    monkeypatch.setattr(backend, "get", no_gpu)
    fails(["train", *QUICK, "--backend", "cuda", "--out", str(tmp_path / "run")],
          "^fastnn train: --backend: backend 'cuda' cannot run here: .*no NVIDIA driver$")


def test_a_usage_error_in_a_real_process_is_one_line_on_stderr_with_status_2(tmp_path):
    (tmp_path / "a_file").write_text("x")
    done = subprocess.run([sys.executable, "-m", "fastnn", "train", "--out",
                           str(tmp_path / "a_file")], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"fastnn train: --out: '{tmp_path / 'a_file'}' exists "
                                        f"and is not a folder"]


def test_train_without_matplotlib_skips_the_plot_with_a_note(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--hidden", "8", "--quiet", "--backend", "numpy",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err == "fastnn train: matplotlib is not installed: no learning_curve.png (pip " \
                  "install matplotlib)\n"
    assert sorted(p.name for p in out.iterdir()) == ["model.npz"]


def test_train_with_zero_epochs_skips_the_plot(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    out.mkdir()
    (out / "learning_curve.png").write_bytes(b"an earlier run's curve")
    assert main(["train", "--epochs", "0", "--hidden", "8", "--quiet", "--backend", "numpy",
                 "--out", str(out)]) == 0
    assert "no epoch trained: no learning_curve.png" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["model.npz"]  # the old curve is gone


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_a_diverged_training_is_one_line_with_status_1(tmp_path):
    pytest.importorskip("sklearn")
    fails(["train", *QUICK, "--lr", "1e30", "--out", str(tmp_path / "run")],
          "^fastnn train: training diverged \\(TrainingDivergedError: .*\\); try a lower --lr",
          status=1)


@pytest.mark.parametrize("error, match", [
    (MemoryError(), "^fastnn train: out of memory \\(MemoryError\\); try a smaller --hidden"),
    ("diverged", "^fastnn train: training diverged .*; try a smaller --l2"),
])
def test_out_of_memory_and_a_huge_l2_are_one_line_with_status_1(tmp_path, monkeypatch, error,
                                                                 match):
    import fastnn.cli.train
    from fastnn.errors import NonFiniteError

    def work(**kwargs):
        raise NonFiniteError("loss overflowed") if error == "diverged" else error

    monkeypatch.setattr(fastnn.cli.train, "run", work)
    fails(["train", "--l2", "1e308", "--out", str(tmp_path)], match, status=1)


def test_ctrl_c_is_one_line_with_status_130(tmp_path, monkeypatch):
    import fastnn.cli.train

    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fastnn.cli.train, "run", interrupted)
    fails(["train", "--out", str(tmp_path)], "^fastnn train: interrupted$", status=130)


@pytest.mark.parametrize("options, match", [
    (["--threads", "-1"], "^fastnn bench: --threads must be in \\[0, \\d+\\] .*got -1$"),
    (["--threads", "100000"], "^fastnn bench: --threads must be in"),
    (["--cuda", "--threads", "2"], "^fastnn bench: --threads .* does not apply to --cuda$"),
])
def test_bench_options(options, match, monkeypatch):
    from fastnn import bench

    monkeypatch.setattr(bench, "run", lambda **kwargs: pytest.fail("the benchmark started"))
    fails(["bench", *options], match)


def test_bench_cuda_without_a_gpu_is_one_line(monkeypatch):
    from fastnn import bench

    def refuse():
        raise RuntimeError("no GPU here")

    monkeypatch.setattr(bench, "require_real_gpu", refuse)
    monkeypatch.setattr(bench, "run_cuda", lambda **kwargs: pytest.fail("the benchmark started"))
    fails(["bench", "--cuda"], "^fastnn bench: --cuda: no GPU to time: no GPU here$")


# --- tune ------------------------------------------------------------------------------------

TUNE = ["tune", "--trials", "2", "--epochs", "1", "--hidden", "8,8", "--quiet"]


@pytest.mark.parametrize("options, match", [
    (["--out", "{tmp}/a_file"], "^fastnn tune: --out: '.*a_file' exists and is not a folder$"),
    (["--out", "{tmp}/a_file/x"], "^fastnn tune: --out: cannot write into the folder"),
    (["--jobs", "0"], "^fastnn tune: --jobs must be an integer >= 1, got 0$"),
    (["--rounds", "3"], "^fastnn tune: --rounds must be <= --trials"),
    (["--epochs", "0"], "^fastnn tune: --epochs must be an integer >= 1, got 0$"),
    (["--heartbeat", "0"], "^fastnn tune: --heartbeat must be an integer >= 1"),
    (["--seed", "-1"], "^fastnn tune: --seed must be an integer >= 0"),
    (["--seed", "4294967296"], "^fastnn tune: --seed must be an integer in \\[0, 4294967295\\]"),
    (["--trials", "1000000000000"], "^fastnn tune: --trials must be an integer in \\[1, "
                                    "1000000\\]"),
    (["--heartbeat", "99999999999999"], "^fastnn tune: --heartbeat must be an integer in "
                                        "\\[1, 86400\\]"),
    (["--storage", "sqlite://", "--jobs", "2"], "^fastnn tune: --storage: 'sqlite://' is an "
                                                "in-memory database"),
    (["--dask", "local", "--executor", "thread"], "^fastnn tune: --executor does not apply"),
    (["--dask", "tcp://127.0.0.1:1", "--jobs", "2"], "^fastnn tune: --jobs does not apply"),
    (["--dask", "foo://x"], "^fastnn tune: --dask: 'foo://x' is not a Dask scheduler address"),
    (["--dask", "somehost"], "^fastnn tune: --dask: .*missing port number"),
    (["--storage", "not a url"], "^fastnn tune: --storage: 'not a url' is not a database URL"),
    (["--storage", "sqlite:///{tmp}/a_file"], "^fastnn tune: --storage: cannot open .*file is "
                                              "not a database"),
    (["--storage", "postgresql://u:secret@127.0.0.1:1/db"],
     "^fastnn tune: --storage: .*u:\\*\\*\\*@"),
    (["--lr", "1,0.1"], "^fastnn tune: --lr: LogUniform: the range \\[low, high\\] is inverted"),
    (["--lr", "1,2,3"], "^fastnn tune: --lr must be LOW,HIGH \\(two numbers\\)"),
    (["--l2", "0,1"], "^fastnn tune: --l2: LogUniform: low must be > 0"),
    (["--hidden", "0,10"], "^fastnn tune: --hidden: MLPObjective: hidden must be an integer >= "
                           "1, but the search space allows hidden = 0"),
    (["--hidden", "1.5,10"], "^fastnn tune: --hidden must be LOW,HIGH \\(two integers\\)"),
    (["--layers=-1,2"], "^fastnn tune: --layers: .*layers must be an integer >= 0"),
])
def test_tune_options_fail_with_one_line_and_status_2_before_any_trial(places, no_work, options,
                                                                      match):
    pytest.importorskip("optuna")
    pytest.importorskip("sklearn")
    options = [o.replace("{tmp}", str(places)) for o in options]
    if not any(o.startswith("--out") for o in options):
        options += ["--out", str(places / "out")]
    fails([*TUNE, *options], match)
    assert not (places / "out").exists()  # nothing written


def test_an_unreachable_dask_scheduler_fails_quickly(tmp_path, no_work):
    pytest.importorskip("distributed")
    import socket
    import time

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    fails([*TUNE, "--dask", f"tcp://127.0.0.1:{port}", "--out", str(tmp_path / "out")],
          "^fastnn tune: --dask: cannot reach the Dask scheduler at .* within 5 s")
    assert time.monotonic() - start < 10 and not (tmp_path / "out").exists()


def test_tune_when_every_trial_fails_says_so_and_keeps_the_csv(tmp_path, capsys):
    pytest.importorskip("optuna")
    pytest.importorskip("sklearn")
    out = tmp_path / "out"
    fails([*TUNE, "--lr", "1e29,1e30", "--out", str(out)],
          "^fastnn tune: no trial completed \\(2 fail; trial 0 failed: TrainingDivergedError",
          status=1)
    printed = capsys.readouterr().out
    assert "(no trial has completed)" in printed and "failed trials (2 of 2):" in printed
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0].endswith(",fail_reason") and all(",FAIL," in r for r in rows[1:])
    assert not (out / "best_model.npz").exists()


def test_tune_resume_checks_and_missing_files(tmp_path, capsys, monkeypatch):
    pytest.importorskip("optuna")
    pytest.importorskip("sklearn")
    out = tmp_path / "out"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # and without matplotlib: no plots
    assert main([*TUNE, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "matplotlib is not installed: no plots" in captured.err
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("tune.db")) == [
        "best_model.npz", "models", "trials.csv"]
    # resumed with other settings: the options that differ are named
    fails([*TUNE, "--out", str(out), "--epochs", "2"], "^fastnn tune: --epochs/--seed: search: "
                                                       "study 'digits' .* other settings")
    fails([*TUNE, "--out", str(out), "--trials", "3"], "^fastnn tune: --trials: .*n_trials=2 "
                                                       "\\(now 3\\)")
    # the trials' model files deleted or damaged: the result stands, with a note
    for model in (out / "models").iterdir():
        model.write_bytes(b"damaged")
    (out / "best_model.npz").unlink()
    assert main([*TUNE, "--out", str(out)]) == 0
    assert "its model cannot be copied to" in capsys.readouterr().err
    assert not (out / "best_model.npz").exists()


def test_tune_storage_in_an_output_folder_that_holds_a_folder_named_tune_db(tmp_path, no_work):
    pytest.importorskip("optuna")
    (tmp_path / "out" / "tune.db").mkdir(parents=True)
    fails([*TUNE, "--out", str(tmp_path / "out")], "^fastnn tune: --out: storage: cannot open")


def test_tune_checks_its_models_folder_and_storage_before_any_trial(tmp_path, no_work,
                                                                     monkeypatch):
    pytest.importorskip("optuna")
    import sqlite3

    import fastnn.tune.storage as storage

    out = tmp_path / "out"
    out.mkdir()
    (out / "models").write_text("a file where the models folder goes")
    fails([*TUNE, "--out", str(out)], "^fastnn tune: --out: '.*models' exists and is not a "
                                      "folder$")
    (out / "models").unlink()
    # another application's SQLite file, with a table of the name Optuna uses
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("create table studies (id integer, name text)")
    fails([*TUNE, "--out", str(out), "--storage", f"sqlite:///{other}"],
          "^fastnn tune: --storage: cannot use .*other.db: it is not an Optuna database")
    # a read-only SQLite file (os.access decides, also for root)
    readonly = tmp_path / "readonly.db"
    readonly.write_bytes(b"")
    real = os.access
    monkeypatch.setattr(storage.os, "access",
                        lambda path, mode: real(path, mode) and str(path) != str(readonly))
    fails([*TUNE, "--out", str(out), "--storage", f"sqlite:///{readonly}"],
          "^fastnn tune: --storage: cannot open .*readonly.db.* is read-only")


def test_a_ctrl_c_dropped_in_a_finalizer_is_delivered_again():
    """A KeyboardInterrupt raised in a weakref callback, which Python can only drop, reaches the
    command's main thread anyway (the CLI's unraisablehook), also in a blocking wait. (In a
    fresh interpreter: pytest has an unraisablehook of its own.)"""
    code = textwrap.dedent("""
        import sys, time, weakref
        from fastnn.cli import _redeliver_interrupt
        sys.unraisablehook = _redeliver_interrupt(sys.unraisablehook)

        class Thing:
            pass

        def dropped(_):
            raise KeyboardInterrupt  # as a Ctrl-C landing while a finalizer runs

        try:
            for _ in range(3):
                thing = Thing()
                ref = weakref.ref(thing, dropped)
                del thing
                time.sleep(10)
                print("not interrupted")
        except KeyboardInterrupt:
            print("interrupted")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, preexec_fn=interruptible)
    assert done.stdout == "interrupted\n" and done.stderr == "", done


def test_ctrl_c_of_tune_with_two_worker_processes_ends_at_once(tmp_path):
    """SIGINT to the process group while the workers start: one line, status 130, within
    seconds, and no process of the group left."""
    pytest.importorskip("optuna")
    pytest.importorskip("sklearn")
    import signal
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "fastnn", "tune", "--trials", "4", "--epochs", "20", "--hidden",
         "30,60", "--jobs", "2", "--heartbeat", "1", "--quiet", "--out", str(tmp_path / "o")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=interruptible)
    time.sleep(2.0)
    os.killpg(process.pid, signal.SIGINT)
    try:
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    # 130, or death by SIGINT: the same status ($? = 130) to a shell. CPython 3.11 to 3.13 end a
    # `python -m` process by SIGINT after its SystemExit when the KeyboardInterrupt first rose in
    # code that exec() compiled (a dataclass being made while a module is imported, say), even
    # though it was caught (the flag _Py_UnhandledKeyboardInterrupt; see CPython gh-128130).
    assert process.returncode in (130, -signal.SIGINT), err
    assert err.splitlines() == ["fastnn tune: interrupted; run the same command again to "
                                "resume the search"], err
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("worker processes are left")
