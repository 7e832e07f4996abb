# SPDX-License-Identifier: MIT
"""What a writer does to the newest log file before starting its own: cut a torn tail, nothing else.

A writer that died (a crash, kill -9, power) can have left one incomplete record at the end of the
file it was writing, the newest. That record is cut, so readers stop reporting it; it was never
whole, so nothing is lost. Damage anywhere else (a bad sector, a stray write) is left where it is:
readers skip the damaged record and read the rest, and cutting there would destroy intact records.
A file the collector may not change (collector/logs/directory.py) is left alone. Format 1 files, which
cannot tell a torn tail from damage, are never changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from collector.logs.directory import NotALog, open_ours, written_files
from collector.logs.framing import FileCursor


@dataclass(frozen=True)
class Repair:
    """What a writer found in the newest file, `cut` bytes from `offset` on (0: left as it was)."""

    path: Path
    offset: int
    cut: int
    reason: str

    def as_record(self) -> dict:
        """For the `repairs` of the next file's header."""
        return {"file": self.path.name, "offset": self.offset, "cut": self.cut, "reason": self.reason}

    def describe(self) -> str:
        """The line that tells the operator what was found: the file, then the reason."""
        return f"{self.path}: {self.reason}"


def repair_newest(log_dir: str | os.PathLike, now: float | None = None) -> Repair | None:
    """Cut the newest log file's torn tail; say what was found. None: the file was whole."""
    files = written_files(log_dir, now)
    if not files:
        return None
    path = files[-1][0]
    try:
        fd = open_ours(path, Path(log_dir))
    except NotALog as why:
        return Repair(path, 0, 0, f"newest file named like a log is {why}: left alone")
    damage: list[tuple[int, str]] = []
    # The cursor owns a duplicate (it closes it); truncation goes through the checked descriptor.
    with FileCursor(path, os.dup(fd), lambda _path, offset, reason: damage.append((offset, reason))) as cursor:
        for _ in cursor.records(final=True):
            pass
    try:
        others = [(offset, reason) for offset, reason in damage if offset != cursor.torn_at]
        left = f"; {others[0][1]} at byte {others[0][0]} left as it is" if others else ""
        if cursor.torn_at is None or cursor.format != 2:
            if not others:
                return None
            offset, reason = others[0]
            return Repair(path, offset, 0, f"{reason} at byte {offset}: left as it is, readers skip it")
        size = os.fstat(fd).st_size
        os.ftruncate(fd, cursor.torn_at)
        os.fsync(fd)
        if cursor.torn_at == 0 and _same_file(path, fd):
            os.unlink(path)  # not even a header: a file that never started
            return Repair(path, 0, size, f"removed: {size} bytes of a header cut short (a writer died)")
        return Repair(
            path,
            cursor.torn_at,
            size - cursor.torn_at,
            f"cut {size - cursor.torn_at} bytes of a record cut short at byte {cursor.torn_at} (a writer died){left}",
        )
    finally:
        os.close(fd)


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.lstat(path).st_ino == os.fstat(fd).st_ino
    except OSError:
        return False
