# SPDX-License-Identifier: MIT
"""`export`: log directories to a Parquet dataset, hive-partitioned by host and date, incrementally.

PATH/_addaddr_export.json (the manifest) names, for every log file read, the offset after its last
exported record and its host, and lists the dataset's files. A run reads each file from its offset,
so a nightly run over the same directories adds only what was appended since, and never a record
twice. A run's files are written as hidden .*.tmp files (Spark and DuckDB skip them), renamed into
place, and only then does the manifest name
them: files of a run that died before that are removed by the next run, which exports their records
again. Connections still open when a run ends are written to `open-*` files and kept in the
manifest; the next run completes them and drops those files.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from collector.addresses.anonymize import Anonymizer
from collector.errors import CollectorError
from collector.fleet.rows import MANIFEST, TABLE_COLUMNS, Connections, Row, RowMaker
from collector.fleet.schema import arrow_table
from collector.logs.directory import expand, kind_of
from collector.logs.framing import DamageHandler
from collector.logs.reader import read_file_from
from collector.report.render import iso_time

LOCK = "_addaddr_export.lock"
MANIFEST_FORMAT = 1
# Rows of one (table, host, date) that go to one file: few files of a good size for the readers.
FLUSH_ROWS = 250_000
# Rows held as Python dicts before they become Arrow columns: a dict row takes some 1.5 KB, its Arrow
# form about a tenth of that, so that memory is bounded by this, not by FLUSH_ROWS.
CHUNK_ROWS = 5_000
PROGRESS_RECORDS = 50_000
# A file without a header names no host: Hive's name for a missing partition value.
NO_HOST = "__HIVE_DEFAULT_PARTITION__"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
# Addresses whose anonymized forms identify the key without revealing it.
_KEY_PROBES = ("192.0.2.1", "2001:db8::1")


@dataclass
class ExportResult:
    """What an export did: records taken, log files read, rows per table, connections left open for the
    next export to complete, and the problems (files refused) to report."""

    records: int = 0
    files_read: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLE_COLUMNS, 0))
    open_connections: int = 0
    problems: list[str] = field(default_factory=list)


def partition_value(text: str) -> str:
    """Hive-style escaping of a partition value (Spark and DuckDB read it back unescaped)."""
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), text)


def _day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def _hidden(path: Path) -> Path:
    # Spark skips names starting with "." or "_"; DuckDB's *.parquet glob skips the suffix.
    return path.with_name(f".{path.name}.tmp")


class _Files:
    """The dataset's files: those of past runs, those this run writes (hidden until commit)."""

    def __init__(self, root: Path, run: str) -> None:
        self.root, self.run = root, run
        self.written: list[str] = []
        self._count = 0

    def write(self, table: str, host: str, date: str, rows: pa.Table, prefix: str) -> None:
        self._count += 1
        relative = f"{table}/host={partition_value(host)}/date={date}/{prefix}-{self.run}-{self._count:05d}.parquet"
        path = _hidden(self.root / relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(rows, path, compression="zstd")
        self.written.append(relative)

    def commit(self) -> None:
        for relative in self.written:
            os.replace(_hidden(self.root / relative), self.root / relative)


class _Bucket:
    """The rows of one (table, host, date) not yet in a file: the latest as dicts, the rest as Arrow."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.rows: list[Row] = []
        self.chunks: list[pa.Table] = []
        self.count = 0

    def add(self, row: Row) -> None:
        self.rows.append(row)
        self.count += 1
        if len(self.rows) >= CHUNK_ROWS:
            self.chunks.append(arrow_table(self.table, self.rows))
            self.rows = []

    def take(self) -> pa.Table:
        """All its rows as one table; the bucket is empty after."""
        taken = pa.concat_tables([*self.chunks, arrow_table(self.table, self.rows)])
        self.rows, self.chunks, self.count = [], [], 0
        return taken


class _Buckets:
    """Rows by (table, host, date); a bucket that fills goes to a file at once."""

    def __init__(self, files: _Files, result: ExportResult) -> None:
        self._files, self._result = files, result
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        self._days: dict[int, str] = {}

    def emit(self, table: str, host: str, row: Row) -> None:
        second = int(row["time"] // 86400)
        day = self._days.get(second)
        if day is None:
            day = self._days[second] = _day(row["time"])
        bucket = self._buckets.get((table, host, day))
        if bucket is None:
            bucket = self._buckets[table, host, day] = _Bucket(table)
        bucket.add(row)
        self._result.rows[table] += 1
        if bucket.count >= FLUSH_ROWS:
            self._files.write(table, host, day, bucket.take(), "part")

    def flush(self) -> None:
        for (table, host, day), bucket in self._buckets.items():
            if bucket.count:
                self._files.write(table, host, day, bucket.take(), "part")
        self._buckets.clear()


class _Manifest:
    def __init__(self, root: Path) -> None:
        self.path = root / MANIFEST
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            data = {
                "format": MANIFEST_FORMAT,
                "window": None,
                "key": None,
                "logs": {},
                "files": [],
                "open_files": [],
                "open": [],
            }
        except (OSError, ValueError) as exc:
            raise CollectorError(
                f"{self.path} cannot be read ({exc}); restore it, or export to a new --to directory"
            ) from None
        if data.get("format") != MANIFEST_FORMAT:
            raise CollectorError(
                f"{self.path} is of another export format ({data.get('format')}); export to a new --to directory"
            )
        self.data = data

    def save(self) -> None:
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "w") as out:
            json.dump(self.data, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)


def _check_target(root: Path) -> None:
    """--to is a directory, a link to one, or nothing yet (made then); else one line says what is there.
    Other errors (a part of the path a file, no permission) are the command's one line with its hint."""
    try:
        info = os.lstat(root)
    except FileNotFoundError:
        return
    what = kind_of(info.st_mode)
    if stat.S_ISLNK(info.st_mode):
        try:
            info = os.stat(root)
        except FileNotFoundError:
            raise CollectorError(
                f"--to {root} is a symbolic link to nowhere ({os.readlink(root)}); remove it, or give a directory"
            ) from None
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise CollectorError(f"--to {root} is a symbolic link that loops; remove it, or give a directory") from None
        what = f"a symbolic link to {kind_of(info.st_mode)}"
    if not stat.S_ISDIR(info.st_mode):
        raise CollectorError(
            f"--to {root} is {what}, not a directory; give a directory (one that does not exist yet is made)"
        )


def _open_dataset(root: Path) -> _Manifest:
    _check_target(root)
    # Our lock alone is what an export of no new records leaves: no manifest yet, and no other file.
    if root.is_dir() and not (root / MANIFEST).exists() and any(p.name != LOCK for p in root.iterdir()):
        raise CollectorError(
            f"--to {root} holds files but no {MANIFEST}: not an addaddr export; give a new or empty directory"
        )
    root.mkdir(parents=True, exist_ok=True)
    manifest = _Manifest(root)
    if not manifest.path.exists():
        # Marked ours before any file is written: an export that fails midway (a full disk) leaves a
        # dataset the next one takes up, its strays removed, not a directory it would refuse.
        manifest.save()
    return manifest


def _remove_strays(root: Path, manifest: _Manifest) -> None:
    """Files of a run that died before its manifest was saved, or that a later run replaced."""
    known = set(manifest.data["files"]) | set(manifest.data["open_files"])
    for table in TABLE_COLUMNS:
        for path in (root / table).rglob("*"):
            if (
                path.is_file()
                and path.name.endswith((".parquet", ".parquet.tmp"))
                and path.relative_to(root).as_posix() not in known
            ):
                path.unlink()


def _check_same(manifest: _Manifest, name: str, value, option: str, shown: Callable = str) -> None:
    stored = manifest.data[name]
    if manifest.data["logs"] and stored != value:
        before, now = (shown(v) if v is not None else "unset" for v in (stored, value))
        raise CollectorError(
            f"{manifest.path.parent} was exported with {option} {before}, not {now}: rows of "
            f"both would mix; export to a new --to directory"
        )
    manifest.data[name] = value


def _window_text(window: list) -> str:
    return " ".join(iso_time(t) if t is not None else "-" for t in window)


def _placeholders(root: Path, files: _Files, manifest: _Manifest) -> None:
    """A file of no rows for each table that has none yet, so that readers find every table."""
    have = {relative.split("/", 1)[0] for relative in manifest.data["files"] + files.written}
    for table in TABLE_COLUMNS:
        if table not in have:
            files.write(table, NO_HOST, NO_HOST, arrow_table(table, []), "empty")


def _log_name(path: Path) -> str:
    """The key of a log file in the manifest. realpath, not Path.resolve(): a link loop planted in a
    log directory must not end the export with RuntimeError (the reader then skips the link)."""
    return os.path.realpath(path)


def _started(path: Path) -> list:
    """[host, file_started] of the header a log file starts with: what tells it from another file put
    under its name later (rsync's copies of a growing file have new inodes, the same header)."""
    for record, _offset in read_file_from(path, on_damage=lambda *_: None):  # damage: said when read
        if record.get("kind") == "header":
            return [record.get("host") or NO_HOST, record.get("file_started")]
        break
    return [NO_HOST, None]


def _log_size(path: Path) -> int | None:
    """Its size, links not followed; None for what is no regular file (a FIFO, a link to /dev/zero or
    a loop), which the reader names and skips."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return 0  # gone since the listing
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def pending_bytes(log_dirs: Iterable[str], to: str | os.PathLike) -> int:
    """How much of the logs the next export reads: for a progress bar."""
    try:
        logs = json.loads(Path(to, MANIFEST).read_text())["logs"]
    except (OSError, ValueError, KeyError):
        logs = {}
    total = 0
    for path in expand(log_dirs):
        done = logs.get(_log_name(path), {}).get("offset", 0)
        total += max(0, (_log_size(path) or 0) - done)
    return total


def export(
    log_dirs: Iterable[str],
    to: str | os.PathLike,
    *,
    since: float | None = None,
    until: float | None = None,
    anonymize_key: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_damage: DamageHandler | None = None,
) -> ExportResult:
    """Adds to the dataset at `to` the records of `log_dirs` that no earlier export of it took."""
    root = Path(to)
    manifest = _open_dataset(root)
    with open(root / LOCK, "w") as lock:
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CollectorError(f"another export is writing {root}; wait for it to finish") from None
            return _export(root, manifest, list(log_dirs), since, until, anonymize_key, on_progress, on_damage)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            # pyarrow's own words name no path ("Error writing bytes to file. Detail: [errno 28] ...").
            raise CollectorError(f"no space left on device writing {root}; free space or choose another --to") from None


def _export(root, manifest, log_dirs, since, until, anonymize_key, on_progress, on_damage) -> ExportResult:
    anonymizer = Anonymizer.from_key_file(anonymize_key) if anonymize_key else None
    key = [anonymizer.anonymize_address(a) for a in _KEY_PROBES] if anonymizer else None
    _check_same(
        manifest, "window", None if since is None and until is None else [since, until], "--since/--until", _window_text
    )
    _check_same(manifest, "key", key, "--anonymize-key", lambda _: "a key")
    _remove_strays(root, manifest)
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)
    result = ExportResult()
    files = _Files(root, run)
    buckets = _Buckets(files, result)
    connections = Connections(buckets.emit, [(host, row) for host, row in manifest.data["open"]])
    maker = RowMaker(
        buckets.emit, connections, -math.inf if since is None else since, math.inf if until is None else until
    )
    anonymize = anonymizer.anonymize_record if anonymizer else None
    logs = manifest.data["logs"]
    done_bytes = 0
    for path in expand(log_dirs):
        name = _log_name(path)
        seen = logs.get(name, {"offset": 0, "host": None})
        size = _log_size(path)
        if size is None:
            # A FIFO's size is 0: passed over as if exported already, it went unnamed. The reader names it.
            for _ in read_file_from(path, on_damage=on_damage):
                pass  # nothing: it refuses to read anything but a regular file
            continue
        if size < seen["offset"]:
            result.problems.append(
                f"{path} is shorter ({size} bytes) than when last exported "
                f"({seen['offset']}): replaced? its new records were not exported"
            )
            continue
        if size == seen["offset"]:
            continue
        started = seen.get("started")
        if seen["offset"]:
            header = _started(path)
            if "started" not in seen:
                # Exported before headers were kept: read on from the offset, past the header, kept
                # None, it was compared with the header next time and the file refused as replaced.
                started = header[1]
            elif header != [seen["host"] or NO_HOST, started]:  # None: no header read (damaged, or none)
                result.problems.append(
                    f"{path} is not the file exported before under this name (its header "
                    f"differs): replaced? its records were not exported; export it to a new "
                    f"--to directory, or give it another name"
                )
                continue
        result.files_read += 1
        host, offset = seen["host"], seen["offset"]
        start = offset
        for record, offset in read_file_from(path, start, on_damage=on_damage):
            if record.get("kind") == "header":
                host, started = record.get("host") or NO_HOST, record.get("file_started")
                continue
            result.records += 1
            maker.add(host or NO_HOST, anonymize(record) if anonymize else record)
            if on_progress is not None and result.records % PROGRESS_RECORDS == 0:
                on_progress(done_bytes + offset - start)
        done_bytes += size - seen["offset"]
        logs[name] = {"offset": offset, "host": host, "started": started}
        if on_progress is not None:
            on_progress(done_bytes)
    if not result.files_read:
        return result  # nothing new: the dataset stays as it is, its open connections too
    buckets.flush()
    open_rows = connections.open_rows()
    partitions: dict[tuple[str, str], list[Row]] = {}
    for host, row in open_rows:
        partitions.setdefault((host, _day(row["time"])), []).append(row)
    for (host, day), rows in partitions.items():
        files.write("connections", host, day, arrow_table("connections", rows), "open")
    result.open_connections = len(open_rows)
    _placeholders(root, files, manifest)
    files.commit()
    replaced = manifest.data["open_files"]
    opened = [f for f in files.written if f.rsplit("/", 1)[1].startswith("open-")]
    manifest.data["files"] += [f for f in files.written if f not in opened]
    manifest.data["open_files"] = opened
    manifest.data["open"] = [[host, row] for host, row in open_rows]
    manifest.save()
    for relative in replaced:
        (root / relative).unlink(missing_ok=True)
    return result
