# SPDX-License-Identifier: MIT
"""`addaddr replay`: captures through the kernel program into logs, as `run` writes them."""

import os
import stat
from collections.abc import Callable

from collector.commands import console
from collector.live.signals import unwinding
from collector.pipeline.session import hold_collections, map_large_blocks
from collector.replay.run import replay

# As a shell reports a command ended by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130


def capture_bytes(captures: tuple[str, ...]) -> int:
    """The total a progress bar counts to: the regular files' sizes. A capture that cannot be looked at
    counts 0 here: the replay names it in its own one-line error."""
    return sum(_regular_size(c) for c in captures)


def _regular_size(path: str) -> int:
    try:
        status = os.stat(path)
    except (OSError, ValueError):  # Path.is_file() lets EACCES and ENAMETOOLONG through
        return 0
    return status.st_size if stat.S_ISREG(status.st_mode) else 0


def replay_captures(
    captures: tuple[str, ...],
    log_dir: str,
    anonymize_key: str | None,
    host: str | None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """A capture that cannot be read to its end keeps what was read and is named on stderr (exit 1);
    so are packets whose time cannot be (before 1970, after 2200), refused one by one.

    The line naming the kernel features goes to stderr too, unless a progress bar is drawn there.
    """
    hold_collections()
    map_large_blocks()
    # SIGTERM and SIGHUP unwind like Ctrl-C, so that the log is closed with what was replayed in it.
    try:
        with unwinding():
            result = replay(
                list(captures), log_dir, progress, anonymize_key, host, say=None if progress else console.message
            )
    except KeyboardInterrupt:
        console.error(
            f"interrupted: the logs in {log_dir} hold the packets replayed until then; replay "
            "into a new --log-dir for whole captures"
        )
        return EXIT_INTERRUPTED
    session = result.session
    if session.writer.repaired is not None:
        console.message(session.writer.repaired.describe())
    console.message(
        f"{result.packets} packets, {session.events} events, {session.announcements} "
        f"announcements, {session.lost_samples} lost, {result.refused} refused; logs in {log_dir}"
    )
    for problem in result.errors:
        console.error(str(problem))
    if result.bad_time:
        console.error(
            f"{result.bad_time} packets timed before 1970 or after 2200 were not replayed "
            "(a damaged timestamp, if_tsoffset or if_tsresol); counted as bad_time in the stats"
        )
    return console.EXIT_BAD_INPUT if result.errors or result.bad_time else console.EXIT_OK
