"""`spmirror simulate`: serve the bundled Solar Proof API simulator in the foreground."""

from __future__ import annotations

import argparse

from mirror.arguments import non_negative_int, port
from mirror.exit_codes import EXIT_OK


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "simulate", help="serve the bundled Solar Proof API simulator",
        description="Serve a fake Solar Proof apidata.php with seeded Australian customers, for "
        "demos, tests and benchmarks. Prints its URL and API key once it is listening.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=port, default=8765, help="port to bind; 0 picks a free one (default 8765)")
    parser.add_argument("--customers", type=non_negative_int, default=1000, help="customers to seed (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the data and the faults (default 1)")
    parser.add_argument("--api-key", default="demo-key", help="the API key the simulator accepts (default demo-key)")
    parser.add_argument(
        "--order", choices=("id", "newest"), default="id",
        help="listing order of getallcustomers, which the real API leaves undocumented (default id)",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every API request")
    parser.set_defaults(handler=run, needs_settings=False)


def run(args: argparse.Namespace, _settings) -> int:
    # Imported here: the simulator is a separate program that happens to ship with the mirror.
    from mirror.simulator.server import serve_forever

    serve_forever(host=args.host, port=args.port, customers=args.customers, seed=args.seed,
                  api_key=args.api_key, order=args.order, latency_ms=args.latency_ms)
    return EXIT_OK
