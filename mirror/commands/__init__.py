"""One module per `spmirror` subcommand; each offers `register(subparsers)`."""
