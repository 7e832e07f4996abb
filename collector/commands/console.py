# SPDX-License-Identifier: MIT
"""Where commands print: data on stdout, one-line messages on stderr, and the exit statuses."""

import errno
import sys
from typing import TextIO

PROG = "addaddr"
EXIT_OK = 0
# Some input could not be used; what could was still printed.
EXIT_BAD_INPUT = 1
EXIT_FAILED = 1
# A usage error, as click's are.
EXIT_USAGE = 2


def data(line: str) -> None:
    """Prints a line of data (records, a report) on stdout."""
    print(line, file=sys.stdout, flush=True)


def message(line: str) -> None:
    """Prints a one-line message on stderr, after the program's name: `addaddr: ...`."""
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


def error(text: str) -> None:
    """Prints an error the user can act on, as a message: `addaddr: error: ...`."""
    message(f"error: {text}")


def progress_stream() -> TextIO | None:
    """Where a progress bar is drawn among the messages: stderr when a person watches it; None when it is
    a pipe, a file or a journal, which the bar's redraws would only fill."""
    return sys.stderr if sys.stderr.isatty() else None


# What to do about an OSError on a path, by errno.
_OS_ERROR_HINTS = {
    errno.EACCES: "run as a user who may use it, or change its permissions",
    errno.EPERM: "run as a user who may use it, or change its permissions",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.ENAMETOOLONG: "give a shorter path",
    errno.ENOSPC: "free some space on its file system",
    errno.EDQUOT: "free some space on its file system",
    errno.EROFS: "its file system is read-only: give a path on another one",
    errno.ELOOP: "a symbolic link loops or is in the way",
    errno.EEXIST: "something else (a file, a dangling link) is in the way",
}


def os_error(problem: OSError) -> str:
    """One line for an OSError no command foresaw: the path, the system's word, what to do."""
    where = f"{problem.filename}: " if problem.filename is not None else ""
    hint = _OS_ERROR_HINTS.get(problem.errno)
    return f"{where}{problem.strerror or problem}" + (f"; {hint}" if hint else "")
