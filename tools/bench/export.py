# SPDX-License-Identifier: MIT
"""export: records/s, CPU seconds and peak RSS of `addaddr export` of a log of 5 million records
(--quick: 200,000) into a new dataset, against `addaddr report --format json` over the same log in the
same rounds (the reference: the study over the msgpack logs), and the dataset's size against the log's.

The log is the report benchmark's (tools/bench/report.py): per connection a `connection`, three
client announcements each echoed by the server, one `mp_join`, one `connection_end`, and a `stats`
record every 10,000 records. Its first file alone, exported in the same rounds, is the reference of
the peak RSS: the same peak shows that the export's memory does not follow the log's size.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import ADDADDR
from .measure import Cost, Result, Row, ratio, rounds, run_alone, sample
from .report import write_log

RECORDS_PER_CONNECTION = 9  # REPEATS 1 in tools/bench/report.py
# Export writes five tables where report only counts: at least a fifth of report's speed.
SPEED_LIMIT = 0.2
# Parquet (zstd) against msgpack: the dataset at most the log's size.
SIZE_LIMIT = 1.0
# The whole log against its first file: memory bounded by the export's buffers, not the records.
RSS_LIMIT = 1.5


def _timed(what: str, command: list[str], **popen) -> Cost:
    """The command's cost, also said on stderr as it comes: a 5-million-record round takes minutes."""
    cost = run_alone(command, **popen)
    print(
        f"bench:   {what}: {cost.wall:.0f} s wall, {cost.cpu:.1f} s CPU, peak RSS {cost.max_rss_mib:.0f} MiB",
        file=sys.stderr,
        flush=True,
    )
    return cost


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run(quick: bool) -> Result:
    count, records = (1, 200_000) if quick else (2, 5_000_000)
    result = Result("export")
    with tempfile.TemporaryDirectory(prefix="addaddr-export-") as scratch:
        log, first, dataset = Path(scratch, "log"), Path(scratch, "first"), Path(scratch, "dataset")
        began = time.perf_counter()
        written = write_log(log, records // RECORDS_PER_CONNECTION, 1)
        print(
            f"bench:   wrote the log, {written:,} records: {time.perf_counter() - began:.0f} s wall",
            file=sys.stderr,
            flush=True,
        )
        first.mkdir()
        first_file = min(log.glob("*.msgpack"))
        os.link(first_file, first / first_file.name)
        first_mib = first_file.stat().st_size / 2**20

        def export(logs: Path):
            def measure():
                shutil.rmtree(dataset, ignore_errors=True)
                command = [ADDADDR, "export", "--log-dir", str(logs), "--to", str(dataset)]
                return _timed(f"export of {logs.name}", command, stderr=subprocess.DEVNULL)

            return measure

        def report():
            return _timed(
                "report", [ADDADDR, "report", "--log-dir", str(log), "--format", "json"], stdout=subprocess.DEVNULL
            )

        # The whole log last: its dataset is the one measured below.
        exports_first, reports, exports = rounds(count, export(first), report, export(log))
        log_bytes, dataset_bytes = _size(log), _size(dataset)
    ours, reference = [written / c.wall for c in exports], [written / c.wall for c in reports]
    result.rows.append(
        Row(
            f"records/s exported, {written:,} records",
            sample(ours),
            sample(reference),
            "report",
            ratio(ours, reference),
            SPEED_LIMIT,
            better="higher",
        )
    )
    cpu, cpu_reference = [c.cpu for c in exports], [c.cpu for c in reports]
    result.rows.append(
        Row(
            f"CPU s (user+sys) of the export, {written:,} records",
            sample(cpu),
            sample(cpu_reference),
            "report",
            ratio(cpu, cpu_reference),
            digits=1,
        )
    )
    rss, rss_first = [c.max_rss_mib for c in exports], [c.max_rss_mib for c in exports_first]
    result.rows.append(
        Row(
            f"peak RSS of the export (MiB), {written:,} records vs the first {first_mib:.0f} MiB file of them",
            sample(rss),
            sample(rss_first),
            "first file",
            ratio(rss, rss_first),
            RSS_LIMIT,
            digits=0,
        )
    )
    result.rows.append(
        Row(
            "dataset size (MiB)",
            sample([dataset_bytes / 2**20]),
            sample([log_bytes / 2**20]),
            "msgpack log",
            ratio([dataset_bytes], [log_bytes]),
            SIZE_LIMIT,
            digits=1,
        )
    )
    walls = ", ".join(f"{c.wall:.0f} s" for c in exports)
    result.notes.append(
        f"{'--quick, a smaller log: ' if quick else ''}{count} round(s), each command timed "
        f"whole, start-up included (export of the whole log: {walls} wall); the export writes "
        "a new dataset each round (pyarrow, zstd); peak RSS is the ru_maxrss of the command "
        "alone."
    )
    return result
