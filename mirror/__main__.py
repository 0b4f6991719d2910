"""`python -m mirror` is the same as the `spmirror` command."""

from mirror.cli import main

raise SystemExit(main())
