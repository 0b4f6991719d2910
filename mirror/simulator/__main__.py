"""`python -m mirror.simulator [--port N] [--customers N] ...`: serve_forever without the CLI.

`spmirror simulate` is the supported entry point; this exists so the simulator can run in its
own process even where the main CLI is unavailable (benchmarks, debugging).
"""

import argparse

from .server import serve_forever


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m mirror.simulator",
                                     description=serve_forever.__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--api-key")
    parser.add_argument("--order", choices=("id", "newest"), default="id")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    serve_forever(host=args.host, port=args.port, customers=args.customers, seed=args.seed,
                  api_key=args.api_key, order=args.order, latency_ms=args.latency_ms)


if __name__ == "__main__":
    main()
