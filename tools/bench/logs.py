# SPDX-License-Identifier: MIT
"""logs: what one damaged byte costs a reader (format 1 against format 2), and the speed of writing,
reading and `addaddr report`, before and after format 2.

    .venv/bin/python -m tools.bench.logs [--quick] [--before DIR]

DIR is a checkout of the code before format 2 (`git archive 3057ab8 collector | tar -x -C DIR`): its
writer and reader are loaded from there, its `report` run from there, round by round with ours.
Without it, format 1 is read by this code's reader (which reads format-1 files as before).

Damage: a log of RECORDS records as report.py writes them; one byte in the middle half of the file
(positions drawn with a fixed seed) set to 0x00, to 0xFF, or its bits flipped; the records read
back are counted, and any record that is not the original one of its place counted as wrong.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import msgpack

from collector.logs import framing as log_format
from collector.logs import reader as log_reader
from collector.logs import writer as log_writer

from .measure import Result, Row, ratio, sample
from .report import HEADER, log_records

RECORDS = 100_000
VALUES = (0x00, 0xFF, None)  # None: the byte's bits flipped
HEADER_RECORD = {"kind": "header", **HEADER, "file_started": 1_700_000_000.0}
# This checkout's writer and reader, in the shape of the module that held both before format 2.
CURRENT = SimpleNamespace(LogWriter=log_writer.LogWriter, read_records=log_reader.read_records)


def _load_before(before: Path):
    """The writer and reader of the code before format 2 (logfile.py imports nothing of ours)."""
    spec = importlib.util.spec_from_file_location("logfile_before", before / "collector" / "logfile.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _file_bytes(records: list[dict], framing: int) -> bytes:
    pack = msgpack.Packer(use_bin_type=True).pack
    header = {**HEADER_RECORD, "format": framing}
    if framing == 1:
        return b"".join(pack(r) for r in [header, *records])
    return b"".join(log_format.frame(pack(r)) for r in [header, *records])


def _recovered(reader, path: Path, originals: list[dict]) -> tuple[int, int]:
    """Records read back (headers left out), and how many of them are not the original of their place."""
    by_place = {r["time"]: r for r in originals}  # the damage benchmark's records have distinct times
    got = [r for r in reader(path, on_damage=lambda *_: None) if r.get("kind") != "header"]
    wrong = sum(1 for r in got if by_place.get(r.get("time")) != r)
    return len(got), wrong


def damage(records: list[dict], trials: int, readers: dict, scratch: Path) -> dict[str, list[tuple[int, int]]]:
    rng = random.Random(11)
    results: dict[str, list[tuple[int, int]]] = {name: [] for name in readers}
    files = {framing: _file_bytes(records, framing) for framing in (1, 2)}
    for trial in range(trials):
        value = VALUES[trial % len(VALUES)]
        where = rng.random()
        for name, (framing, reader) in readers.items():
            data = bytearray(files[framing])
            offset = int(len(data) * (0.25 + where / 2))
            data[offset] = data[offset] ^ 0xFF if value is None else value
            path = scratch / f"addaddr-20240101T000000.00000{framing}Z.msgpack"
            path.write_bytes(data)
            results[name].append(_recovered(reader, path, records))
            path.unlink()
    return results


def _write_rate(module, records: list[dict], scratch: Path) -> float:
    log_dir = Path(tempfile.mkdtemp(dir=scratch))
    began = time.perf_counter()
    with module.LogWriter(log_dir, HEADER, sync_records=1 << 30, sync_interval=3600.0) as writer:
        for record in records:
            writer.write(record)
    return len(records) / (time.perf_counter() - began)


def _read_rate(module, log_dir: Path, count: int) -> float:
    began = time.perf_counter()
    for _ in module.read_records(log_dir, on_damage=lambda *_: None):
        pass
    return count / (time.perf_counter() - began)


def _report_rate(code: Path | None, log_dir: Path, count: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(code)) if code else None
    began = time.perf_counter()
    # `-m` puts the working directory first on the path, before PYTHONPATH: in `code`, its collector runs.
    subprocess.run(
        [sys.executable, "-m", "collector.cli", "report", "--log-dir", str(log_dir), "--format", "json"],
        check=True,
        stdout=subprocess.DEVNULL,
        env=env,
        cwd=code,
    )
    return count / (time.perf_counter() - began)


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def measure(
    quick: bool, before: Path | None, trials: int | None = None, rounds: int | None = None
) -> tuple[Result, list[str]]:
    rounds = rounds or (1 if quick else 3)
    lines: list[str] = []
    result = Result("logs")
    old = _load_before(before) if before else None
    with tempfile.TemporaryDirectory(prefix="addaddr-logs-") as scratch_name:
        scratch = Path(scratch_name)
        records = [
            {**r, "time": r["time"] + i * 1e-6} for i, r in enumerate(log_records(RECORDS // 9 + 1, 1)) if i < RECORDS
        ]
        readers = {"format 2": (2, CURRENT.read_records), "format 1": (1, (old or CURRENT).read_records)}
        trials = trials or (4 if quick else 30)
        found = damage(records, trials, readers, scratch)
        for name, outcomes in found.items():
            got = [n for n, _ in outcomes]
            lines.append(
                f"damage, {name}: {len(records):,} records, {trials} trials: recovered min {min(got):,} "
                f"median {statistics.median(got):,.0f} max {max(got):,}; wrong records "
                f"{sum(w for _, w in outcomes)}"
            )
        two, one = ([n for n, _ in found[name]] for name in ("format 2", "format 1"))
        result.rows.append(
            Row(
                f"records recovered of {len(records):,}, one damaged byte",
                sample(two),
                sample(one),
                "format 1",
                ratio(two, one),
                digits=0,
                better="higher",
            )
        )

        # Throughput: the same records, written and read by each side, round by round.
        big = list(log_records((50_000 if quick else 1_000_000) // 9, 1))
        sides = {"after": CURRENT, **({"before": old} if old else {})}
        rates: dict[str, dict[str, list[float]]] = {side: {"write": [], "read": [], "report": []} for side in sides}
        dirs = {side: Path(tempfile.mkdtemp(dir=scratch)) for side in sides}
        for side, module in sides.items():
            with module.LogWriter(dirs[side], HEADER, sync_records=1 << 30, sync_interval=3600.0) as writer:
                for record in big:
                    writer.write(record)
        for _ in range(rounds):
            for side, module in sides.items():
                rates[side]["write"].append(_write_rate(module, records, scratch))
                rates[side]["read"].append(_read_rate(module, dirs[side], len(big)))
                rates[side]["report"].append(_report_rate(before if side == "before" else None, dirs[side], len(big)))
        for side in sides:
            for what in ("write", "read", "report"):
                count = len(records) if what == "write" else len(big)
                lines.append(f"{what} {side}: {_spread(rates[side][what])} records/s over {count:,} records")
        after = rates["after"]
        result.rows.append(
            Row(
                f"`report` records/s over {len(big):,} records", sample(after["report"]), limit=500_000, better="higher"
            )
        )
    return result, lines


def run(quick: bool) -> Result:
    """For scripts/bench: format 2 against format 1 read by the same code."""
    return measure(quick, None)[0]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench.logs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--before", type=Path, metavar="DIR", help="a checkout of the code before format 2")
    parser.add_argument("--trials", type=int, help="damaged bytes tried (default 30, --quick 6)")
    parser.add_argument("--rounds", type=int, help="rounds of the throughput figures (default 3, --quick 1)")
    args = parser.parse_args()
    for line in measure(args.quick, args.before, args.trials, args.rounds)[1]:
        print(line, flush=True)
