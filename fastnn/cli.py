"""Command line of fastnn: ``python -m fastnn train | bench``."""
import argparse
import sys


def _bench(args):
    import numba

    if args.cuda:
        from fastnn import bench_cuda
        bench_cuda.run(quick=args.quick)
        return
    from fastnn import bench

    if args.threads:
        numba.set_num_threads(args.threads)
    bench.run(quick=args.quick)


def _train(args):
    """The main job; a bad option ends it with one line naming it (as ``tune``), no traceback."""
    from fastnn import train

    try:
        hidden = tuple(int(h) for h in args.hidden.split(",") if h)
    except ValueError:
        raise SystemExit(f"fastnn train: --hidden must be comma-separated integers, got "
                         f"{args.hidden!r}") from None
    try:
        train.run(hidden=hidden, epochs=args.epochs, batch_size=args.batch_size,
                  optimizer=args.optimizer, lr=args.lr, decay=args.decay, l2=args.l2,
                  dropout=args.dropout, seed=args.seed, backend=args.backend, out=args.out,
                  plot=not args.no_plot, verbose=not args.quiet)
    except ValueError as error:
        raise SystemExit(f"fastnn train: {error}") from None


def _tune(args):
    from fastnn.tune import StorageError
    from fastnn.tune.run import digits_space, run

    def pair(option, text, kind=float):
        try:
            low, high = (kind(v) for v in text.split(","))
        except ValueError:
            raise SystemExit(f"fastnn tune: {option} must be LOW,HIGH (two numbers), got "
                             f"{text!r}") from None
        return low, high

    try:
        space = digits_space(lr=pair("--lr", args.lr), beta=pair("--beta", args.beta),
                             hidden=pair("--hidden", args.hidden, int), l2=pair("--l2", args.l2),
                             layers=args.layers and pair("--layers", args.layers, int))
        run(trials=args.trials, jobs=args.jobs, storage=args.storage, study=args.study,
            rounds=args.rounds, sampler=args.sampler, seed=args.seed, epochs=args.epochs,
            out=args.out, prune=args.prune, executor=args.executor, dask=args.dask,
            heartbeat=args.heartbeat, space=space, progress=not args.quiet)
    except (ValueError, StorageError) as error:
        raise SystemExit(f"fastnn tune: {error}") from None


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="fastnn", description="Numba-accelerated neural-network kernels.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("train", help="train a batch-normalized MLP on handwritten digits")
    p.add_argument("--hidden", default="256,128", help="hidden widths, comma-separated (256,128)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", choices=["gd", "momentum", "rmsprop", "adam"], default="adam")
    p.add_argument("--lr", type=float, default=3e-3, help="initial learning rate")
    p.add_argument("--decay", type=float, default=0.05,
                   help="inverse-time decay: lr / (1 + decay * epoch)")
    p.add_argument("--l2", type=float, default=0.0, help="L2 regularization lambda")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout rate after each ReLU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=["cpu", "numpy", "cuda"], default=None)
    p.add_argument("--out", default="fastnn-run", help="folder for model.npz and the PNG")
    p.add_argument("--no-plot", action="store_true", help="skip the learning-curve PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)
    p = commands.add_parser("bench", help="time every kernel against its NumPy reference")
    p.add_argument("--quick", action="store_true", help="a fast subset of the shapes")
    p.add_argument("--threads", type=int, default=0, help="Numba threads (default: all cores)")
    p.add_argument("--cuda", action="store_true",
                   help="the GPU table instead: CUDA kernels against CuPy / PyTorch CUDA")
    p.set_defaults(func=_bench)
    p = commands.add_parser("tune", help="hyperparameter search for an MLP on handwritten digits",
                            description="Random search (Optuna) over lr, beta (Adam's beta1), "
                            "hidden units and L2 of a batch-normalized MLP on the digits; rerun "
                            "the same command to resume a killed search.")
    p.add_argument("--trials", type=int, default=20, help="number of trials in all (20)")
    p.add_argument("--jobs", type=int, default=1, help="trials at once (1)")
    p.add_argument("--executor", choices=["process", "thread"], default="process",
                   help="where local jobs run (process)")
    p.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="run trials on a Dask cluster: a scheduler address, or 'local' for a "
                   "local cluster of --jobs workers")
    p.add_argument("--storage", default=None,
                   help="database URL of the study (default sqlite:///OUT/tune.db; "
                   "postgresql://... for many machines)")
    p.add_argument("--study", default="digits", help="study name in the storage (digits)")
    p.add_argument("--rounds", type=int, default=1, help="coarse-to-fine rounds (1)")
    p.add_argument("--sampler", choices=["random", "grid"], default="random")
    p.add_argument("--prune", action="store_true",
                   help="stop hopeless trials (median rule, from epoch 5 on)")
    p.add_argument("--epochs", type=int, default=20, help="epochs per trial (20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", default="1e-4,1", help="learning-rate range, log-uniform (1e-4,1)")
    p.add_argument("--beta", default="0.9,0.999",
                   help="Adam's beta1 range, 1 - beta log-uniform (0.9,0.999)")
    p.add_argument("--hidden", default="50,100", help="hidden-unit range (50,100)")
    p.add_argument("--l2", default="1e-4,1", help="L2 lambda range, log-uniform (1e-4,1)")
    p.add_argument("--layers", default=None, help="hidden-layer range, e.g. 2,4 (default: 1)")
    p.add_argument("--heartbeat", type=int, default=10,
                   help="seconds between heartbeats of running trials; a killed run's trials "
                   "are re-run after twice that (10)")
    p.add_argument("--out", default="fastnn-tune", help="folder for the model, CSV and plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_tune)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
