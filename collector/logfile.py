"""Append-only msgpack log files: writer with rotation and crash repair, reader, follower.

A log directory holds files named ``addaddr-YYYYMMDDTHHMMSS.ffffffZ.msgpack``
(UTC of creation), so name order is time order. Each file is a plain sequence
of msgpack maps; the first is a header ``{"kind": "header", "format": 1, ...}``.
Nothing else frames the records: a file is valid up to its first byte sequence
that does not decode to a map, and everything after that point is damage
(normally one record cut short by a crash).
"""

from __future__ import annotations

import bisect
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgpack

FORMAT = 1
FILE_MODE = 0o640
DIR_MODE = 0o750
READ_SIZE = 1 << 20

_NAME_FORMAT = "addaddr-%Y%m%dT%H%M%S.%fZ.msgpack"
_NAME_RE = re.compile(r"addaddr-\d{8}T\d{6}\.\d{6}Z\.msgpack")
_TICK = timedelta(microseconds=1)

# (path, offset of the first byte not read as a record, reason)
DamageHandler = Callable[[Path, int, str], None]


class LogDamageWarning(UserWarning):
    """A log file ends in bytes that are not a complete record."""


def warn_damage(path: Path, offset: int, reason: str) -> None:
    """Default damage handler: a LogDamageWarning (filterable, catchable in tests)."""
    warnings.warn(f"{path}: {reason} at byte {offset}; rest of file skipped",
                  LogDamageWarning)


def log_files(log_dir: str | os.PathLike) -> list[Path]:
    """The log files of a directory, oldest first."""
    return sorted(Path(log_dir, name) for name in os.listdir(log_dir) if _NAME_RE.fullmatch(name))


@dataclass(frozen=True)
class Repair:
    """What crash repair cut from a file: it now ends at `offset` (0: file removed)."""

    path: Path
    offset: int
    cut: int
    reason: str


def repair_newest(log_dir: str | os.PathLike) -> Repair | None:
    """Cut the newest log file after its last complete record; None if it was intact.

    Only the newest file can have been open for writing when a writer died. A file
    left without a single record is removed, so every file starts with a header.
    """
    files = log_files(log_dir)
    if not files:
        return None
    path = files[-1]
    reasons = []
    with _Cursor(path, lambda _path, _offset, reason: reasons.append(reason)) as cursor:
        for _ in cursor.records():
            pass
        cursor.finish()
    size = path.stat().st_size
    if size and cursor.good == size:
        return None
    if cursor.good == 0:
        path.unlink()
    else:
        with open(path, "r+b") as f:
            f.truncate(cursor.good)
            os.fsync(f.fileno())
    return Repair(path, cursor.good, size - cursor.good, reasons[0] if reasons else "empty file")


class LogWriter:
    """Appends records to rotating log files in `log_dir`.

    Each record is written to the file as it comes, so a crash of the process
    loses none already handed over; the file is fsynced every `sync_records`
    records or `sync_interval` seconds (checked on write; call flush() from a
    timer to bound the delay when writes pause), on rotation and on close().
    A write or flush that fails raises the OSError unchanged after cutting the
    file back to its last complete record; records that did not make it into the
    file are counted in `dropped`, those that did in `written`. Methods may be
    called from several threads (e.g. flush() from a timer thread).
    """

    def __init__(self, log_dir: str | os.PathLike, header: dict, *,
                 max_bytes: int = 64 * 2**20, max_age: float = 3600.0,
                 sync_records: int = 1000, sync_interval: float = 1.0,
                 clock: Callable[[], float] = time.time):
        reserved = header.keys() & {"kind", "format", "file_started"}
        if reserved:
            raise ValueError(f"header keys reserved by the log format: {sorted(reserved)}")
        self.log_dir = Path(log_dir)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.sync_records = sync_records
        self.sync_interval = sync_interval
        self.written = 0
        self.dropped = 0
        self.path: Path | None = None
        self._header = header
        self._clock = clock
        self._packer = msgpack.Packer(use_bin_type=True)
        self._fd: int | None = None
        self._size = 0  # bytes in the file, all complete records
        self._buf = bytearray()  # packed records not yet in the file
        self._ends: list[int] = []  # end offset in _buf of each buffered record
        self._started = self._synced_at = 0.0
        self._unsynced = 0  # records in the file since the last fsync
        self._closed = False
        self._lock = threading.Lock()
        try:
            os.makedirs(self.log_dir, DIR_MODE)
            os.chmod(self.log_dir, DIR_MODE)  # mkdir's mode is filtered by the umask
        except FileExistsError:
            pass
        self.repaired = repair_newest(self.log_dir)
        self._open(clock())

    def write(self, record: dict) -> None:
        with self._lock:
            if self._closed:
                raise ValueError("write to a closed LogWriter")
            now = self._clock()
            try:
                data = self._packer.pack(record)
                if (self._fd is None or self._size + len(self._buf) >= self.max_bytes
                        or now - self._started >= self.max_age):
                    self._close_file()
                    self._open(now)
            except Exception:
                self.dropped += 1
                raise
            self._buf += data
            self._ends.append(len(self._buf))
            # Into the file (the page cache) at once: a crash of this process then loses no record
            # already handed over; only a crash of the machine waits for the fsync.
            self._write_out()
            self._unsynced += 1
            if self._unsynced >= self.sync_records or now - self._synced_at >= self.sync_interval:
                self._sync()

    def flush(self) -> None:
        """Write out buffered records and fsync the file."""
        with self._lock:
            self._flush()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._close_file()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open(self, now: float) -> None:
        stamp = datetime.fromtimestamp(now, timezone.utc)
        files = log_files(self.log_dir)
        if files:
            # Same-microsecond rotations and clock steps back must still sort last.
            newest = datetime.strptime(files[-1].name, _NAME_FORMAT).replace(tzinfo=timezone.utc)
            stamp = max(stamp, newest + _TICK)
        path = self.log_dir / stamp.strftime(_NAME_FORMAT)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                     FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # os.open's mode is filtered by the umask
            header = self._packer.pack(
                {"kind": "header", "format": FORMAT, **self._header, "file_started": now})
            _write_all(fd, header)
            os.fsync(fd)
            _fsync_dir(self.log_dir)
        except BaseException:
            # A file without a complete header would break "every file starts with one".
            os.close(fd)
            path.unlink()
            raise
        self._fd, self.path, self._size = fd, path, len(header)
        self._started = self._synced_at = now

    def _write_out(self) -> None:
        if not self._ends:
            return
        try:
            _write_all(self._fd, self._buf)
        except OSError:
            self._keep_complete_records()
            raise
        self._commit(len(self._ends))

    def _sync(self) -> None:
        # An fsync error is raised as is: the records are whole in the file, only
        # their durability is in doubt.
        if self._fd is not None and self._unsynced:
            os.fsync(self._fd)
        self._unsynced = 0
        self._synced_at = self._clock()

    def _flush(self) -> None:
        self._write_out()
        self._sync()

    def _close_file(self) -> None:
        if self._fd is None:
            return
        try:
            self._flush()
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _commit(self, count: int) -> None:
        """Account the first `count` buffered records as in the file, the rest as dropped."""
        if count:
            self._size += self._ends[count - 1]
        self.written += count
        self.dropped += len(self._ends) - count
        self._buf.clear()
        self._ends.clear()

    def _keep_complete_records(self) -> None:
        # A failed write may have landed part of the buffer: keep the records that
        # landed whole and cut the partial one, so the file stays readable.
        landed = os.fstat(self._fd).st_size - self._size
        self._commit(bisect.bisect_right(self._ends, landed))
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            # Appending after a partial record would hide everything behind it from
            # readers: leave this file as it is (repair-able) and start a new one.
            os.close(self._fd)
            self._fd = None


def _write_all(fd: int, data: bytes | bytearray) -> None:
    with memoryview(data) as view:
        done = 0
        while done < len(view):
            done += os.write(fd, view[done:])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Cursor:
    """Incremental reader of one log file: yields complete valid records only.

    Each call to records() resumes after the last complete record, so the same
    cursor serves a finished file and one still being written.
    """

    def __init__(self, path: str | os.PathLike, on_damage: DamageHandler):
        self.path = Path(path)
        self._file = open(self.path, "rb", buffering=0)
        self.inode = os.fstat(self._file.fileno()).st_ino
        self._on_damage = on_damage
        self.good = 0  # file offset after the last valid record
        self._damaged = False

    def records(self) -> Iterator[dict]:
        """Yield the records completed since the last call."""
        if self._damaged:
            return
        # Bytes of an incomplete record are read again next time rather than kept
        # in the Unpacker: a writer whose write failed cuts them back and may
        # write another record in their place.
        base = self.good
        self._file.seek(base)
        unpacker = msgpack.Unpacker(raw=False)
        try:
            while chunk := self._file.read(READ_SIZE):
                unpacker.feed(chunk)
                for record in unpacker:
                    if type(record) is not dict:
                        self._damage(f"not a record ({type(record).__name__})")
                        return
                    self.good = base + unpacker.tell()
                    yield record
        except (ValueError, msgpack.UnpackException) as e:
            self._damage(f"undecodable ({e})")

    def finish(self) -> None:
        """Report bytes left after the last complete record; call once no more will come."""
        if not self._damaged and os.fstat(self._file.fileno()).st_size > self.good:
            self._damage("truncated record")

    def _damage(self, reason: str) -> None:
        self._damaged = True
        self._on_damage(self.path, self.good, reason)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_records(paths: str | os.PathLike | Iterable[str | os.PathLike], *,
                 on_damage: DamageHandler | None = None) -> Iterator[dict]:
    """Yield the records of log directories and/or files, in the order given.

    A directory is read file by file, oldest first. A file's damaged tail is
    skipped and reported once through on_damage(path, offset, reason); by default
    as a LogDamageWarning (the CLI passes a handler printing to stderr).
    """
    on_damage = on_damage or warn_damage
    for file in expand(paths):
        with _Cursor(file, on_damage) as cursor:
            yield from cursor.records()
            cursor.finish()


def expand(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """The log files of directories and/or files, in the order given, each directory's oldest first."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return [file for path in paths for file in (log_files(path) if os.path.isdir(path) else [Path(path)])]


def follow(log_dir: str | os.PathLike, *, poll_interval: float = 0.2,
           stop: threading.Event | Callable[[], bool] | None = None,
           from_start: bool = True, on_damage: DamageHandler | None = None) -> Iterator[dict]:
    """Yield the records of a log directory, then those appended as they arrive.

    With from_start=False, only records written after the call are yielded.
    Rotation is followed: a file is read to its end before moving to the next one
    by name, which a writer creates only after closing the previous one. Ends when
    `stop` (an Event or a callable) is set; waits for the directory if it is missing.
    """
    log_dir = Path(log_dir)
    on_damage = on_damage or warn_damage
    if stop is None:
        stopped, wait = (lambda: False), time.sleep
    elif isinstance(stop, threading.Event):
        stopped, wait = stop.is_set, stop.wait
    else:
        stopped, wait = stop, time.sleep

    files: list[Path] = []
    while not files:
        if stopped():
            return
        files = log_files(log_dir) if log_dir.is_dir() else []
        if not files:
            from_start = True  # every file that appears from now on is new
            wait(poll_interval)
    cursor = _Cursor(files[0] if from_start else files[-1], on_damage)
    try:
        if not from_start:
            for _ in cursor.records():
                pass
        while True:
            yield from cursor.records()
            if stopped():
                return
            if _replaced(cursor):
                target = cursor.path
            else:
                target = next((p for p in log_files(log_dir) if p.name > cursor.path.name), None)
            if target is None:
                wait(poll_interval)
                continue
            yield from cursor.records()  # bytes written before the switch
            cursor.finish()
            cursor.close()
            cursor = _Cursor(target, on_damage)
    finally:
        cursor.close()


def _replaced(cursor: _Cursor) -> bool:
    try:
        return os.stat(cursor.path).st_ino != cursor.inode
    except FileNotFoundError:
        return False
