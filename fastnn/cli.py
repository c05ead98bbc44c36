"""Command line of fastnn: ``python -m fastnn train | bench``."""
import argparse
import sys


def _bench(args):
    import numba

    from fastnn import bench

    if args.threads:
        numba.set_num_threads(args.threads)
    bench.run(quick=args.quick)


def _train(args):
    from fastnn import train

    hidden = tuple(int(h) for h in args.hidden.split(",") if h)
    train.run(hidden=hidden, epochs=args.epochs, batch_size=args.batch_size,
              optimizer=args.optimizer, lr=args.lr, decay=args.decay, l2=args.l2,
              dropout=args.dropout, seed=args.seed, backend=args.backend, out=args.out,
              plot=not args.no_plot, verbose=not args.quiet)


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
    p.add_argument("--backend", choices=["cpu", "numpy"], default=None)
    p.add_argument("--out", default="fastnn-run", help="folder for model.npz and the PNG")
    p.add_argument("--no-plot", action="store_true", help="skip the learning-curve PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)
    p = commands.add_parser("bench", help="time every kernel against its NumPy reference")
    p.add_argument("--quick", action="store_true", help="a fast subset of the shapes")
    p.add_argument("--threads", type=int, default=0, help="Numba threads (default: all cores)")
    p.set_defaults(func=_bench)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
