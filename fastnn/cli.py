"""Command line of fastnn: ``python -m fastnn bench [--quick] [--threads N]``."""
import argparse
import sys


def _bench(args):
    import numba

    from fastnn import bench

    if args.threads:
        numba.set_num_threads(args.threads)
    bench.run(quick=args.quick)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="fastnn", description="Numba-accelerated neural-network kernels.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("bench", help="time every kernel against its NumPy reference")
    p.add_argument("--quick", action="store_true", help="a fast subset of the shapes")
    p.add_argument("--threads", type=int, default=0, help="Numba threads (default: all cores)")
    p.set_defaults(func=_bench)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
