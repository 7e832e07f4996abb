#!/usr/bin/env python3
"""The log problems of issue 11 ("Why"), each tried as it was found: one PASS or FAIL line each.

    sudo .venv/bin/python scripts/reproduce/issue-11-logs.py

As root (the planted-link problems are about a root collector). Everything happens in a temporary
directory, removed at the end; the collector's problems are in runfaults' script.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import msgpack

from collector.log_dir import NAME_FORMAT
from collector.log_format import frame
from collector.logfile import LogWriter, log_files, read_records
from collector.privileges import _hand_over

ADDADDR = [sys.executable, "-m", "collector.cli"]
SECRET = b"not the collector's\n"
failures = 0


def check(problem: str, ok: bool, detail: str) -> None:
    global failures
    failures += not ok
    print(f"{'PASS' if ok else 'FAIL'}: {problem}: {detail}", flush=True)


def lost(i):
    return {"kind": "lost", "time": 1_700_000_000.0 + i, "count": i}


def write(log_dir, n):
    with LogWriter(log_dir, {"host": "h"}) as w:
        for i in range(n):
            w.write(lost(i))
    return log_files(log_dir)[-1]


def run(*args, timeout=60):
    return subprocess.run([*ADDADDR, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def name_at(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc).strftime(NAME_FORMAT)


def main(top: Path) -> None:
    # Repair destroys good data: one bad byte in the middle of the newest file.
    path = write(top / "a", 10_000)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(data)
    write(top / "a", 0)  # the next run's writer
    records = [r for r in read_records(top / "a", on_damage=lambda *_: None) if r["kind"] == "lost"]
    check("repair destroys good data", path.read_bytes() == data and len(records) == 9_999,
          f"file unchanged: {path.read_bytes() == data}; {len(records):,} of 10,000 records read after the damage")

    # A damaged first byte deletes the whole file.
    path = write(top / "b", 100)
    data = bytearray(path.read_bytes())
    data[0] = 0
    path.write_bytes(data)
    write(top / "b", 0)
    records = [r for r in read_records(top / "b", on_damage=lambda *_: None) if r["kind"] == "lost"]
    check("a damaged first byte deletes the whole file", path.exists() and len(records) == 100,
          f"file kept: {path.exists()}; {len(records)} of 100 records read")

    # Root follows links it did not make: a symlink and a hard link as the newest file.
    for how in ("symlink", "hard link"):
        log_dir = top / how.replace(" ", "_")
        write(log_dir, 1)
        target = top / f"target-{how.replace(' ', '_')}"
        target.write_bytes(frame(msgpack.packb({"kind": "header", "format": 2, "file_started": 1.0})) + SECRET[:5])
        planted = log_dir / name_at(time.time() + 60)
        (planted.symlink_to if how == "symlink" else lambda t: os.link(t, planted))(target)
        before = target.read_bytes()
        write(log_dir, 0)
        check(f"root follows a planted {how}", target.read_bytes() == before, "target unchanged")

    # run --user hands the dir over: a hard link planted there must not hand over its target.
    log_dir = top / "handover"
    write(log_dir, 1)
    target = top / "root-file"
    target.write_bytes(SECRET)
    os.link(target, log_dir / name_at(time.time() + 60))
    _hand_over(log_dir, 65534, 65534)
    check("run --user hands over a planted hard link's target", target.stat().st_uid == 0,
          f"target owner uid {target.stat().st_uid}")

    # Readers crash on records of the wrong shape.
    log_dir = top / "shapes"
    path = write(log_dir, 3)
    bad = [{"kind": "add_addr", "time": 1.0}, {"kind": "lost", "time": "x", "count": 1},
           {"kind": "lost", "time": float("nan"), "count": 1}, {"kind": "lost", "time": 1e300, "count": 1},
           {"time": 1.0}, {"kind": "header", "format": 2, "file_started": 1.0, "host": ["a"]}]
    with open(path, "ab") as f:
        for record in bad:
            f.write(frame(msgpack.packb(record)))
    tail, report = run("tail", "--log-dir", log_dir), run("report", "--log-dir", log_dir, "--format", "json")
    ok = ("Traceback" not in tail.stderr + report.stderr and tail.returncode == report.returncode == 1
          and tail.stderr.count("\n") == report.stderr.count("\n") == len(bad) and json.loads(report.stdout))
    check("readers crash on records of the wrong shape", bool(ok),
          f"tail exit {tail.returncode}, report exit {report.returncode}, {report.stderr.count(chr(10))} lines "
          f"on stderr for {len(bad)} bad records, report printed its figures")

    # Entries named like logs that are not regular files; a name from year 9999.
    log_dir = top / "entries"
    write(log_dir, 2)
    os.mkfifo(log_dir / name_at(1_000_000_000))
    (log_dir / name_at(1_000_000_001)).mkdir()
    (log_dir / "addaddr-99991231T235959.999999Z.msgpack").write_bytes(b"")
    try:
        tail = run("tail", "--log-dir", log_dir, timeout=30)
        again = subprocess.run([sys.executable, "-c", "import sys; from collector.logfile import LogWriter; "
                                "LogWriter(sys.argv[1], {}).close()", log_dir], capture_output=True, timeout=30)
        ok = tail.returncode == 1 and "Traceback" not in tail.stderr and again.returncode == 0
        detail = f"tail exit {tail.returncode}, {tail.stderr.count(chr(10))} warnings; a later run exit {again.returncode}"
    except subprocess.TimeoutExpired:
        ok, detail = False, "hung"
    check("a FIFO, a directory or a year-9999 name hang or crash readers and runs", ok, detail)

    # tail exits 0 on damaged logs.
    path = write(top / "cut", 3)
    path.write_bytes(path.read_bytes()[:-3])
    tail = run("tail", "--log-dir", top / "cut")
    check("tail exits 0 on damaged logs", tail.returncode == 1, f"exit {tail.returncode}")

    # A header of an unknown future format is read silently.
    log_dir = top / "future"
    log_dir.mkdir()
    (log_dir / name_at(1_700_000_000)).write_bytes(
        frame(msgpack.packb({"kind": "header", "format": 3, "file_started": 1.0})) + frame(msgpack.packb(lost(0))))
    tail = run("tail", "--log-dir", log_dir)
    check("a header of an unknown format is read silently", tail.returncode == 1 and tail.stdout == ""
          and "log format 3" in tail.stderr, tail.stderr.strip())

    # The same log dir given twice doubles announcements.
    log_dir = top / "twice"
    write(log_dir, 5)
    (top / "twice-link").symlink_to(log_dir)
    report = run("report", "--log-dir", log_dir, "--log-dir", top / "twice-link", "--log-dir", f"{log_dir}/.",
                 "--format", "json")
    check("the same log dir given twice counts twice", json.loads(report.stdout)["lost_events"] == sum(range(5)),
          f"lost_events {json.loads(report.stdout)['lost_events']} (want {sum(range(5))})")


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("run as root: the planted links are about a root collector")
    with tempfile.TemporaryDirectory(prefix="addaddr-issue11-") as scratch:
        main(Path(scratch))
    sys.exit(1 if failures else 0)
