"""The `ulak` command line: a client of Ulak's App API (docs/cli.md). It imports nothing of the
server's code, so it runs wherever Python 3.11 does."""
