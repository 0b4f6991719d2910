"""The `spmirror` command line: argument parsing and dispatch, nothing else.

Exit codes a service manager can act on: 0 ok, 1 unexpected failure, 2 usage or config error,
4 refused by a safety guard, 75 the API was unavailable.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from mirror import __version__

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected zero or more, got {value}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spmirror",
        description="A local two-way SQLite mirror of a Solar Proof account's customers.",
    )
    parser.add_argument("--version", action="version", version=f"spmirror {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    simulate = commands.add_parser(
        "simulate",
        help="serve the bundled Solar Proof API simulator",
        description="Serve a fake Solar Proof apidata.php with seeded Australian customers, for "
        "demos, tests and benchmarks. Prints its URL and API key once it is listening.",
    )
    simulate.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    simulate.add_argument("--port", type=_port, default=8765, help="port to bind; 0 picks a free one (default 8765)")
    simulate.add_argument("--customers", type=_positive_int, default=1000, help="customers to seed (default 1000)")
    simulate.add_argument("--seed", type=int, default=1, help="random seed for the data and the faults (default 1)")
    simulate.add_argument("--api-key", default="demo-key", help="the API key the simulator accepts (default demo-key)")
    simulate.add_argument(
        "--order", choices=("id", "newest"), default="id",
        help="listing order of getallcustomers, which the real API leaves undocumented (default id)",
    )
    simulate.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every API request")
    simulate.set_defaults(handler=_run_simulate)
    return parser


def _run_simulate(args: argparse.Namespace) -> int:
    # Imported here: the simulator is a separate program that happens to ship with the mirror.
    from mirror.simulator.server import serve_forever

    serve_forever(
        host=args.host,
        port=args.port,
        customers=args.customers,
        seed=args.seed,
        api_key=args.api_key,
        order=args.order,
        latency_ms=args.latency_ms,
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
