"""Exit codes a service manager can act on (systemd: RestartPreventExitStatus=2)."""

EXIT_OK = 0
EXIT_FAILURE = 1  # anything unexpected
EXIT_USAGE = 2  # bad arguments or configuration, a refused API key: restarting will not help
EXIT_REFUSED = 4  # a safety guard refused the run (mass delete)
EXIT_UNAVAILABLE = 75  # EX_TEMPFAIL: the API was unavailable; try again later
