# SPDX-License-Identifier: MIT
"""Log files read: finished ones in order, one resumed from an offset, a growing directory followed.

Readers skip what is damaged or of the wrong shape (collector/logs/framing.py, collector/logs/schema.py),
report it through a DamageHandler, and read on.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from collector.logs.directory import NotALog, expand, log_files, open_to_read, writer_stamp, written_files
from collector.logs.framing import DamageHandler, FileCursor


class LogDamageWarning(UserWarning):
    """Something in a log could not be read as a record and was skipped."""


def warn_damage(path: Path, offset: int, reason: str) -> None:
    """Default damage handler: a LogDamageWarning (filterable, catchable in tests)."""
    # The damage is in the file, not at a caller's line, and the handler is called from varying depths
    # (a cursor, open_cursor, report's workers): no level names the caller, 1 keeps the location fixed.
    warnings.warn(f"{path}: byte {offset}: {reason}", LogDamageWarning, stacklevel=1)


def open_cursor(path: Path, on_damage: DamageHandler) -> FileCursor | None:
    """A cursor on the log file `path`, or None when it is not one to read (reported to on_damage)."""
    try:
        return FileCursor(path, open_to_read(path), on_damage)
    except NotALog as why:
        on_damage(path, 0, f"{why}: skipped")
        return None


def read_records(
    paths: str | os.PathLike | Iterable[str | os.PathLike], *, on_damage: DamageHandler | None = None
) -> Iterator[dict]:
    """Yield the valid records of log directories and/or files, in the order given.

    A directory is read file by file, oldest first; a directory or file given twice is read once.
    What is skipped (damaged bytes, a record of the wrong shape, an entry that is no regular file, a
    file of an unknown format) is reported through on_damage(path, offset, reason), once each; by
    default as a LogDamageWarning (the commands print a line on stderr).
    """
    on_damage = on_damage or warn_damage
    for file in expand(paths):
        cursor = open_cursor(file, on_damage)
        if cursor is not None:
            with cursor:
                yield from cursor.records(final=True)


def read_file_from(
    path: str | os.PathLike, offset: int = 0, *, on_damage: DamageHandler | None = None
) -> Iterator[tuple[dict, int]]:
    """Yield (record, offset just after it) for the valid records of one log file from `offset`.

    `offset` is 0 or one this function yielded: a later call resumes there, reading only what was
    appended since (an incremental export). An incomplete last record is left for the next call,
    not reported, since a writer may be finishing it; damage is reported. A file now shorter than
    `offset` is reported and not read: read again from its start, it handed the same records over twice.
    """
    cursor = open_cursor(Path(path), on_damage or warn_damage)
    if cursor is None:
        return
    with cursor:
        cursor.offset = offset
        cursor.reread_when_cut = False
        for record in cursor.records():
            yield record, cursor.offset


def follow(
    log_dir: str | os.PathLike,
    *,
    poll_interval: float = 0.2,
    stop: threading.Event | Callable[[], bool] | None = None,
    from_start: bool = True,
    on_damage: DamageHandler | None = None,
) -> Iterator[dict]:
    """Yield the records of a log directory, then those appended as they arrive.

    With from_start=False, only records written after the call are yielded.
    Rotation is followed: a file is read to its end before moving to the next one
    by name, which a writer creates only after closing the previous one. Ends when
    `stop` (an Event or a callable) is set; waits for the directory if it is missing.
    Names no writer of this host makes (collector/logs/directory.py, written_files) are not followed.
    """
    log_dir = Path(log_dir)
    on_damage = on_damage or warn_damage
    if stop is None:
        stopped, wait = (lambda: False), time.sleep
    elif isinstance(stop, threading.Event):
        stopped, wait = stop.is_set, stop.wait
    else:
        stopped, wait = stop, time.sleep

    present: list[Path] = []
    while not present:
        if stopped():
            return
        present = [path for path, _ in written_files(log_dir)] if log_dir.is_dir() else []
        if not present:
            from_start = True  # every file that appears from now on is new
            wait(poll_interval)
    path = present[0] if from_start else present[-1]
    cursor = open_cursor(path, on_damage)
    try:
        if not from_start and cursor is not None:
            for _ in cursor.records():
                pass
        while True:
            if cursor is not None:
                yield from cursor.records()
            if stopped():
                return
            if cursor is not None and _replaced(cursor):
                target = path
            else:
                target = next((p for p in log_files(log_dir) if p.name > path.name and writer_stamp(p)), None)
            if target is None:
                wait(poll_interval)
                continue
            if cursor is not None:
                yield from cursor.records(final=True)  # bytes written before the switch
                cursor.close()
            path, cursor = target, open_cursor(target, on_damage)
    finally:
        if cursor is not None:
            cursor.close()


def _replaced(cursor: FileCursor) -> bool:
    try:
        return os.stat(cursor.path, follow_symlinks=False).st_ino != cursor.inode
    except FileNotFoundError:
        return False
