"""export: records/s of `addaddr export` of a log of 5 million records (--quick: 200,000) into a new
dataset, against `addaddr report --format json` over the same log in the same rounds (the reference:
the study over the msgpack logs), and the dataset's size against the log's.

The log is the report benchmark's (benchmarks/report.py): per connection a `connection`, three
client announcements each echoed by the server, one `mp_join`, one `connection_end`, and a `stats`
record every 10,000 records.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from . import ADDADDR
from .measure import Result, Row, ratio, rounds, run as cost_of, sample
from .report import write_log

RECORDS_PER_CONNECTION = 9  # REPEATS 1 in benchmarks/report.py
# Export writes five tables where report only counts: at least a fifth of report's speed.
SPEED_LIMIT = 0.2
# Parquet (zstd) against msgpack: the dataset at most the log's size.
SIZE_LIMIT = 1.0


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run(quick: bool) -> Result:
    count, records = (1, 200_000) if quick else (2, 5_000_000)
    result = Result("export")
    with tempfile.TemporaryDirectory(prefix="addaddr-export-") as scratch:
        log, dataset = Path(scratch, "log"), Path(scratch, "dataset")
        written = write_log(log, records // RECORDS_PER_CONNECTION, 1)

        def export():
            shutil.rmtree(dataset, ignore_errors=True)
            return cost_of([ADDADDR, "export", "--log-dir", str(log), "--to", str(dataset)],
                           stderr=subprocess.DEVNULL)

        def report():
            return cost_of([ADDADDR, "report", "--log-dir", str(log), "--format", "json"], stdout=subprocess.DEVNULL)

        exports, reports = rounds(count, export, report)
        log_bytes, dataset_bytes = _size(log), _size(dataset)
    ours, reference = [written / c.wall for c in exports], [written / c.wall for c in reports]
    result.rows.append(Row(f"records/s exported, {written:,} records", sample(ours), sample(reference),
                           "report", ratio(ours, reference), SPEED_LIMIT, better="higher"))
    result.rows.append(Row("dataset size (MiB)", sample([dataset_bytes / 2**20]), sample([log_bytes / 2**20]),
                           "msgpack log", ratio([dataset_bytes], [log_bytes]), SIZE_LIMIT, digits=1))
    result.notes.append(f"{'--quick, a smaller log: ' if quick else ''}{count} round(s), each command timed "
                        "whole, start-up included; the export writes a new dataset each round (pyarrow, zstd).")
    return result
