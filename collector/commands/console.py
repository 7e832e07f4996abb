"""Where commands print: data on stdout, one-line messages on stderr, and the exit statuses."""

import sys

PROG = "addaddr"
EXIT_OK = 0
# Some input could not be used; what could was still printed.
EXIT_BAD_INPUT = 1
EXIT_FAILED = 1
# A usage error, as click's are.
EXIT_USAGE = 2


def data(line: str) -> None:
    print(line, file=sys.stdout, flush=True)


def message(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


def error(text: str) -> None:
    message(f"error: {text}")
