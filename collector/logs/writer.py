# SPDX-License-Identifier: MIT
"""Append-only log files written: rotation, fsync, crash repair before the first write.

Names and safe opening are in collector/logs/directory.py, the bytes of a file (format 2: every record
framed with a length and a CRC) in collector/logs/framing.py, what repair may change in
collector/logs/repair.py; the readers of finished and growing logs in collector/logs/reader.py.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collector.logs.directory import NAME_FORMAT, written_files
from collector.logs.framing import FORMAT, frame, pack_record
from collector.logs.repair import Repair, repair_newest

FILE_MODE = 0o640
DIR_MODE = 0o750
_TICK = timedelta(microseconds=1)
# Names taken by someone else's entries (O_EXCL says so) are skipped, a microsecond at a time.
_NAME_TRIES = 1000
_RESERVED = frozenset({"kind", "format", "file_started", "repairs"})


class LogWriter:
    """Appends records to rotating log files in `log_dir`, each a new file it creates.

    Before the first file, the newest file already there is repaired (collector/logs/repair.py): what
    was found is in `repaired`, for the caller to report, and in the first file's header (`repairs`).
    Each call's records are written to the file before it returns (one write() for
    write_many's batch), so a crash of the process loses none already handed over; the file is
    fsynced every `sync_records` records or `sync_interval` seconds (checked on write; call flush()
    from a timer to bound the delay when writes pause), on rotation and on close().
    A write or flush that fails raises the OSError unchanged after cutting the
    file back to its last complete record; records that did not make it into the
    file are counted in `dropped`, those that did in `written`. Methods may be
    called from several threads (e.g. flush() from a timer thread).
    """

    def __init__(
        self,
        log_dir: str | os.PathLike,
        header: dict,
        *,
        max_bytes: int = 64 * 2**20,
        max_age: float = 3600.0,
        sync_records: int = 1000,
        sync_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ):
        reserved = header.keys() & _RESERVED
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
        self.repaired: Repair | None = repair_newest(self.log_dir, clock())
        self._open(clock())

    def write(self, record: dict) -> None:
        """Appends one record, as write_many does a batch."""
        self.write_many((record,))

    def write_many(self, records: Iterable[dict]) -> None:
        """Appends `records` in order with one write(): a batch costs one system call, not one a record."""
        with self._lock:
            if self._closed:
                raise ValueError("write to a closed LogWriter")
            now = self._clock()
            buf, ends = self._buf, self._ends
            count = 0
            # Whether the file rotates before the next record: it is too old (the same for every
            # record of the batch), or the bytes in it and buffered reach max_bytes (buffered bytes
            # count: the file rotates before the same record as when each was written on its own).
            due = self._fd is None or now - self._started >= self.max_age
            room = self.max_bytes - self._size
            try:
                for record in records:
                    try:
                        data = frame(pack_record(record))
                        if due or len(buf) >= room:
                            self._close_file()
                            self._open(now)
                            due, room = False, self.max_bytes - self._size
                    except Exception:
                        self.dropped += 1
                        raise
                    buf += data
                    ends.append(len(buf))
                    count += 1
            finally:
                # Into the file (the page cache) before returning, even when a record failed: a
                # crash of this process then loses no record already handed over; only a crash of
                # the machine waits for the fsync.
                self._write_out()
                self._unsynced += count
            if self._unsynced >= self.sync_records or now - self._synced_at >= self.sync_interval:
                self._sync()

    def flush(self) -> None:
        """Write out buffered records and fsync the file."""
        with self._lock:
            self._flush()

    def close(self) -> None:
        """Writes out what is buffered, fsyncs and closes the file; a later write raises ValueError."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._close_file()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open(self, now: float) -> None:
        stamp = datetime.fromtimestamp(now, UTC)
        files = written_files(self.log_dir, now)
        if files:
            # Same-microsecond rotations and clock steps back must still sort last.
            stamp = max(stamp, files[-1][1] + _TICK)
        fd = path = None
        for _ in range(_NAME_TRIES):
            path = self.log_dir / stamp.strftime(NAME_FORMAT)
            try:
                # O_EXCL|O_NOFOLLOW: only a file this call creates, never one planted under that name.
                fd = os.open(
                    path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_APPEND | os.O_CLOEXEC, FILE_MODE
                )
                break
            except FileExistsError:
                stamp += _TICK
        if fd is None:
            raise FileExistsError(f"{self.log_dir}: the next {_NAME_TRIES} log file names are all taken")
        try:
            os.fchmod(fd, FILE_MODE)  # os.open's mode is filtered by the umask
            repairs = {"repairs": [self.repaired.as_record()]} if self.repaired and self.path is None else {}
            header = frame(
                pack_record({"kind": "header", "format": FORMAT, **self._header, "file_started": now, **repairs})
            )
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
