# SPDX-License-Identifier: MIT
"""The files of a log directory, and opening them without trusting what else may be in there.

A log directory holds files named ``addaddr-YYYYMMDDTHHMMSS.ffffffZ.msgpack`` (UTC of creation), so
name order is time order. Anything may have been put there under such a name: a symbolic or hard
link to a file elsewhere, a FIFO that blocks whoever opens it, a directory, a name from year 9999.
Files are opened without following links and without blocking, and looked at with fstat on the open
descriptor (what is checked is what is read or written); the collector writes to, or repairs, only a
regular file with one link, owned by itself or by the owner of the directory (`run --user` hands
the directory over).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

NAME_FORMAT = "addaddr-%Y%m%dT%H%M%S.%fZ.msgpack"
NAME_RE = re.compile(r"addaddr-\d{8}T\d{6}\.\d{6}Z\.msgpack")
# A writer's clock may step back (NTP), so its files can be named a little in the future; a name
# further ahead was not made by a writer of this host and must not decide where the next file goes.
FUTURE_SLACK = timedelta(days=1)

_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFDIR: "a directory",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFLNK: "a symbolic link",
}


def kind_of(mode: int) -> str:
    """What a file of this `st_mode` is, in a few words: "a FIFO", "a regular file"."""
    return "a regular file" if stat.S_ISREG(mode) else _KINDS.get(stat.S_IFMT(mode), "not a regular file")


class NotALog(Exception):
    """An entry named like a log file that the collector will not open, and why, in a few words."""


def log_files(log_dir: str | os.PathLike) -> list[Path]:
    """The entries of a directory named like log files, oldest first (whatever they are)."""
    return sorted(Path(log_dir, name) for name in os.listdir(log_dir) if NAME_RE.fullmatch(name))


def stamp_of(path: Path) -> datetime | None:
    """The creation time a log file's name gives, or None for a name no clock makes (month 13)."""
    try:
        return datetime.strptime(path.name, NAME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def writer_stamp(path: Path, now: float | None = None) -> datetime | None:
    """The time in `path`'s name if a writer of this host could have named a file so, else None.

    Names that are no time, or a time more than FUTURE_SLACK after `now`, were not made by a writer
    here: taken for the newest file, they would stop the next file from being named after it.
    """
    stamp = stamp_of(path)
    latest = datetime.fromtimestamp(time.time() if now is None else now, UTC) + FUTURE_SLACK
    return stamp if stamp is not None and stamp <= latest else None


def written_files(log_dir: str | os.PathLike, now: float | None = None) -> list[tuple[Path, datetime]]:
    """The log files a writer of this host could have made (writer_stamp), oldest first, with their time."""
    return [(path, stamp) for path in log_files(log_dir) if (stamp := writer_stamp(path, now)) is not None]


def expand(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """The log files of directories and/or files, in the order given, each directory's oldest first.

    A directory or file given twice, under any spelling (a symlink, `a/../a`), counts once.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    seen: set[tuple[int, int]] = set()
    files = []
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            files.append(Path(path))  # opening it says what is wrong
            continue
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        if not stat.S_ISDIR(info.st_mode):
            files.append(Path(path))
            continue
        for file in log_files(path):
            try:
                info = os.lstat(file)
            except OSError:
                continue  # gone since the listing
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                files.append(file)
    return files


def open_to_read(path: Path) -> int:
    """A read-only descriptor of the regular file `path`; NotALog for anything else.

    Never blocks (a FIFO's open would wait for a writer) and never follows a symbolic link.
    """
    fd = _open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        _check_regular(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_ours(path: Path, log_dir: Path) -> int:
    """A read-write descriptor of `path` if the collector may change it; NotALog says why not.

    Only a regular file with one link (a hard link elsewhere would be changed with it), owned by
    this process's user or by the log directory's owner (who could change it anyway).
    """
    fd = _open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        info = _check_regular(fd)
        if info.st_nlink != 1:
            raise NotALog(f"a file with {info.st_nlink} links (a hard link to a file elsewhere?)")
        owners = {os.geteuid(), os.stat(log_dir).st_uid}
        if info.st_uid not in owners:
            raise NotALog(f"owned by uid {info.st_uid}, not by this collector")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise NotALog(_why(path, exc)) from None


def _why(path: Path, exc: OSError) -> str:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return exc.strerror or str(exc)
    kind = _KINDS.get(stat.S_IFMT(mode))
    return kind if kind else (exc.strerror or str(exc))


def _check_regular(fd: int) -> os.stat_result:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise NotALog(_KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file"))
    if _never_written(fd, info):
        raise NotALog(f"a sparse file of {info.st_size:,} bytes with none written (made by truncate?)")
    return info


def _never_written(fd: int, info: os.stat_result) -> bool:
    """A file with a size but not a block of data, all of it a hole: a writer writes every byte it
    counts, so this one was sized by truncate or a seek. Read, its zeros would be taken for damage,
    at a few seconds a GiB. A filesystem that cannot tell holes from data says all is data."""
    if info.st_size == 0 or info.st_blocks != 0:
        return False
    try:
        os.lseek(fd, 0, os.SEEK_DATA)
    except OSError as exc:
        return exc.errno == errno.ENXIO  # no data from byte 0 to the end
    return False
