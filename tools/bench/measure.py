# SPDX-License-Identifier: MIT
"""What every benchmark shares: repeated figures with their median and spread, rows of the table,
and the cost of a process (wall time, CPU seconds, peak RSS) read from the kernel.

The machines are shared and noisy, so a figure is never one measurement: each is repeated, and the
table prints its median with the lowest and highest value. A ratio against a reference is taken
round by round, ours and the reference measured back to back, and its median is the ratio shown.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


@dataclass(frozen=True)
class Sample:
    """Values of one figure over the repeats."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def text(self, digits: int) -> str:
        median = f"{self.median:,.{digits}f}"
        if len(self.values) < 2:
            return median
        return f"{median} ({min(self.values):,.{digits}f}–{max(self.values):,.{digits}f})"

    def as_json(self) -> dict:
        return {"median": self.median, "min": min(self.values), "max": max(self.values), "values": list(self.values)}


def sample(values: Sequence[float]) -> Sample:
    return Sample(tuple(values))


def rounds(count: int, *measures: Callable[[], T]) -> list[list[T]]:
    """`count` rounds of each measure in turn: for each measure, its values round by round.

    Back to back, so that a noisy spell of the machine hits both sides of a ratio alike; in an order
    shuffled each round (seeded: the same every run), so that no measure always runs first, on a
    warm cache say, and no periodic swing of the machine lines up with one of them.
    """
    order = random.Random(len(measures))
    values: list[list[T]] = [[] for _ in measures]
    for _ in range(count):
        for turn in order.sample(range(len(measures)), len(measures)):
            values[turn].append(measures[turn]())
    return values


def ratio(ours: Sequence[float], reference: Sequence[float]) -> Sample:
    """Ours over the reference, round by round."""
    return sample([o / r if r else float("inf") for o, r in zip(ours, reference)])


@dataclass
class Row:
    """One line of the table. `better` says which way the ratio (ours, without one) must go to meet
    `limit`."""

    figure: str
    ours: Sample
    reference: Sample | None = None
    reference_name: str = ""
    ratio: Sample | None = None
    limit: float | None = None
    better: str = "lower"  # "lower": ratio <= limit; "higher": ratio >= limit
    digits: int = 0

    @property
    def met(self) -> bool | None:
        if self.limit is None:
            return None
        value = (self.ours if self.ratio is None else self.ratio).median
        return value <= self.limit if self.better == "lower" else value >= self.limit

    @property
    def target(self) -> str:
        if self.limit is None:
            return ""
        return f"{'≤' if self.better == 'lower' else '≥'} {self.limit:g}"

    def cells(self) -> list[str]:
        met = {True: "yes", False: "NO", None: ""}[self.met]
        reference = (
            "" if self.reference is None else f"{self.reference.text(self.digits)} {self.reference_name}".strip()
        )
        ratio = "" if self.ratio is None else self.ratio.text(3 if self.ratio.median < 1 else 2)
        return [self.figure, self.ours.text(self.digits), reference, ratio, self.target, met]

    def as_json(self) -> dict:
        return {
            "figure": self.figure,
            "ours": self.ours.as_json(),
            "reference": None if self.reference is None else self.reference.as_json(),
            "reference_name": self.reference_name or None,
            "ratio": None if self.ratio is None else self.ratio.as_json(),
            "target": self.target or None,
            "met": self.met,
        }


@dataclass
class Result:
    """One benchmark's rows, and notes on how it was measured (printed under the table)."""

    name: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"figures": [row.as_json() for row in self.rows], "notes": self.notes}


HEADER = ("benchmark", "figure", "ours median (min–max)", "reference", "ratio", "target", "met")


def markdown_table(results: Sequence[Result]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for result in results:
        for row in result.rows:
            lines.append("| " + " | ".join([result.name, *row.cells()]) + " |")
    return "\n".join(lines)


# --- the cost of a process -------------------------------------------------------------------


# For run(): what the measured commands print is not looked at.
QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


@dataclass(frozen=True)
class Cost:
    wall: float  # seconds
    cpu: float  # user + system seconds, of the process and the children it waited for
    user: float  # of those, user seconds: what runs outside the kernel
    max_rss_mib: float  # ru_maxrss: anonymous memory and mapped files alike, of its largest process
    max_anon_mib: float | None  # the highest RssAnon of its processes together, when asked for


def run(command: Sequence[str], anon: bool = False, **popen) -> Cost:
    """Runs `command` to its end, as a child of its own, so that its rusage is its alone. With
    `anon`, its anonymous RSS is also sampled every ANON_SAMPLE seconds for its peak."""
    start = time.perf_counter()
    process = subprocess.Popen(command, **popen)
    return finish(process, start, anon)


# A forked child's ru_maxrss counts its parent's memory until exec: the benchmarks' Python, 100 MiB
# and more, would hide a small command's peak. This launcher, small itself, forks and execs the
# command and writes its wall time and peak RSS (KiB) to the file named first.
_LAUNCHER = """import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{time.perf_counter() - start} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_alone(command: Sequence[str], anon: bool = False, **popen) -> Cost:
    """Like run(), with the peak RSS the command's own (see _LAUNCHER) and the wall time from its fork;
    with `anon`, the anonymous RSS sampled is that of the command's processes, the launcher's left out."""
    with tempfile.NamedTemporaryFile("r", prefix="bench-launcher-") as figures:
        start = time.perf_counter()
        launcher = subprocess.Popen([sys.executable, "-c", _LAUNCHER, figures.name, *command], **popen)
        cost = finish(launcher, start, anon, launched=True)
        wall, max_rss_kib = figures.read().split()
    return Cost(float(wall), cost.cpu, cost.user, int(max_rss_kib) / 1024, cost.max_anon_mib)


# Short, so that a sampled run's wall time ends at most this late.
ANON_SAMPLE = 0.01


def finish(process: subprocess.Popen, start: float, anon: bool = False, launched: bool = False) -> Cost:
    """Waits for `process`, which must succeed; wall time from `start` (a perf_counter reading).
    `launched`: `process` is _LAUNCHER, whose own memory is not sampled with `anon`."""
    max_anon = 0.0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG if anon else 0)
        if pid:
            break
        max_anon = max(max_anon, _anon_mib(_tree(process.pid)[launched:]))
        time.sleep(ANON_SAMPLE)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, process.args))} exited with {process.returncode}")
    return Cost(
        wall, usage.ru_utime + usage.ru_stime, usage.ru_utime, usage.ru_maxrss / 1024, max_anon if anon else None
    )


def _anon_mib(pids: Sequence[int]) -> float:
    """RssAnon of these processes together (a command and its descendants: report's worker processes):
    heap and stacks, not the files they map (a capture read through mmap)."""
    total = 0
    for each in pids:
        for line in _proc(each, "status").splitlines():
            if line.startswith("RssAnon:"):
                total += int(line.split()[1])
    return total / 1024


def _tree(pid: int) -> list[int]:
    """`pid` and every descendant of it still running."""
    pids = [pid]
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                pids += _tree(int(child))
    except FileNotFoundError:
        pass  # gone meanwhile
    return pids


def _proc(pid: int, name: str) -> str:
    try:
        return Path(f"/proc/{pid}/{name}").read_text()
    except FileNotFoundError:
        return ""  # gone meanwhile


def tree_cpu(pid: int) -> float:
    """CPU seconds so far of `pid` and of every descendant still running (tshark's dumpcap).

    Read before a measured spell and subtracted from the rusage at the end, to leave out start-up
    (bcc compiling the program, tshark loading its dissectors).
    """
    total = 0
    for each in _tree(pid):
        stat = _proc(each, "stat")
        if stat:
            # utime, stime, cutime, cstime: fields 14-17 of proc(5), 12-15 after the name.
            total += sum(int(v) for v in stat.rsplit(")", 1)[1].split()[11:15])
    return total / CLOCK_TICKS


def interrupt(process: subprocess.Popen) -> None:
    """SIGINT, as Ctrl-C: the watchers then drain, report and exit."""
    process.send_signal(signal.SIGINT)


def wait_for_text(
    path: Path, text: str, process: subprocess.Popen, timeout: float = 60.0, interval: float = 0.05
) -> None:
    """Until `text` appears in the file a process writes its stderr to (its 'ready' line), looking
    every `interval` seconds."""
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited early: {path.read_text(errors='replace').strip()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{process.args[0]} did not say {text!r} within {timeout:.0f} s")
        time.sleep(interval)
