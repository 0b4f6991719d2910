"""`spmirror simulate`: serve the bundled Solar Proof API simulator in the foreground."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import TextIO

from mirror.arguments import non_negative_int, port, program
from mirror.exit_codes import EXIT_OK


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "simulate", parents=[common], help="serve the bundled Solar Proof API simulator",
        description="Serve a fake Solar Proof apidata.php with seeded Australian customers, for "
        "demos, tests and benchmarks. Prints its URL and API key once it is listening, then the lines to "
        "paste to sync a mirror against it.",
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
    parser.add_argument(
        "--no-getcustomer", dest="getcustomer", action="store_false",
        help="serve no getcustomer action (it is undocumented): it answers as an unknown action does",
    )
    parser.add_argument(
        "--ignore-field", dest="ignored_fields", action="append", default=[], type=write_field,
        metavar="NAME",
        help="accept this create/update body field (firstname, surname, email, phone1, phone2, type, "
        "companyname, companyphone, gststatus) but do not store it; repeatable",
    )
    parser.add_argument(
        "--empty-keeps-value", dest="empty_clears", action="store_false",
        help='an update sending "" or null for phone2, companyname or companyphone keeps the old value',
    )
    # The odd cases `spmirror check` recognises, to try it (and a mirror) against them.
    parser.add_argument("--old-docs", action="store_true",
                        help="serve the older documentation's shapes: integer ids, notes as \"\", status as a "
                        "number, datetime creation dates, errors inside HTTP 200, creates without an id")
    parser.add_argument("--int-ids", action="store_true", help="customer, project and user ids as JSON numbers")
    parser.add_argument("--errors-in-200", action="store_true",
                        help="answer errors ({code, message}) with HTTP 200 instead of 4xx")
    parser.add_argument("--page-size", type=page_size, default=50, metavar="N",
                        help="customers per getallcustomers page (the docs say 50; default 50)")
    parser.add_argument("--unknown-status", default="", metavar="WORD",
                        help="a status word the docs do not list, served for every fifth customer")
    parser.add_argument("--past-end", choices=("empty", "last", "error"), default="empty",
                        help="what a listing page past the last answers: [] (empty, the default), the last page "
                        "again (last), or an error (error)")
    parser.set_defaults(handler=run, needs_settings=False)


def page_size(text: str) -> int:
    """An argparse type: a page size the simulator can serve (1..1000)."""
    from mirror.simulator.quirks import MAX_PAGE_SIZE  # imported late, as in run()

    value = non_negative_int(text)
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"expected 1..{MAX_PAGE_SIZE}, got {value}")
    return value


def write_field(text: str) -> str:
    """An argparse type: one of the simulator's write-body field names."""
    from mirror.simulator.quirks import WRITE_FIELD_NAMES  # imported late, as in run()

    if text not in WRITE_FIELD_NAMES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(WRITE_FIELD_NAMES)}, got {text!r}")
    return text


def quirks_from(args: argparse.Namespace):
    """The simulator's Quirks for these arguments (the other quirks at their defaults)."""
    from mirror.simulator.quirks import Quirks

    quirks = Quirks.old_docs() if args.old_docs else Quirks()
    switched = {name: True for name in ("int_ids", "errors_in_200") if getattr(args, name)}
    return quirks.update(getcustomer=args.getcustomer, ignored_fields=tuple(args.ignored_fields),
                         empty_clears=args.empty_clears, page_size=args.page_size,
                         unknown_status=args.unknown_status, past_end=args.past_end, **switched)


def run(args: argparse.Namespace, _settings) -> int:
    # Imported here: the simulator is a separate program that happens to ship with the mirror.
    from mirror.simulator.server import serve_forever

    announced = _ThenHowToSync(sys.stdout)
    sys.stdout = announced
    try:
        serve_forever(host=args.host, port=args.port, customers=args.customers, seed=args.seed,
                      api_key=args.api_key, order=args.order, latency_ms=args.latency_ms,
                      quirks=quirks_from(args))
    finally:
        sys.stdout = announced.stream
    return EXIT_OK


def how_to_sync(url: str, key: str) -> str:
    """The lines to paste into another shell to sync a mirror against the simulator at `url`."""
    me = program()
    return "\n".join([
        "To sync a mirror against it, in another shell:",
        f"  export SPMIRROR_API_URL={shlex.quote(url)} SPMIRROR_API_KEY={shlex.quote(key)}",
        f"  {me} --db simulated.db sync",
        f"  {me} --db simulated.db status",
        "Ctrl-C stops the simulator.",
    ]) + "\n"


class _ThenHowToSync:
    """stdout while the simulator starts: its two ready lines ("... listening on URL", "API key:
    KEY", as serve_forever documents them, and which scripts read by their last word) pass
    through first and unchanged; the lines to paste follow them."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self._start: str | None = ""

    def write(self, text: str) -> int:
        self.stream.write(text)
        if self._start is not None:
            self._start += text
            lines = self._start.split("\n")
            if len(lines) > 2:
                self._start = None
                self.stream.write(how_to_sync(lines[0].split()[-1], lines[1].partition(": ")[2]))
                self.stream.flush()
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)
