# SPDX-License-Identifier: MIT
"""The collector killed, stopped and starved of disk under load: logs stay readable, nothing is lost
silently, the next run starts clean."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from collector.lab.testbed import ClientPlan, Testbed
from collector.logs.directory import log_files
from collector.logs.reader import read_records
from tests.support.collector_process import Collector, announcements, ours_on
from tests.support.paths import ADDADDR
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, BPF, tmpfs)"), pytest.mark.slow]

PLAN = (ClientPlan(("10.1.2.3", "192.168.7.9", "2002:c000:201::1")),)
KILLS = 3
RECORDS_SECONDS = 60


class Load:
    """MPTCP connections in a loop until stopped: the collector is always busy when hit."""

    def __init__(self, bed: Testbed):
        self._bed, self._stop = bed, threading.Event()
        self._thread = threading.Thread(target=self._drive)

    def _drive(self) -> None:
        while not self._stop.is_set():
            self._bed.drive(2)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "got the load still running 60 s after it was told to stop"


def read_with_damage(log_dir: Path) -> tuple[list[dict], list[tuple]]:
    damage = []
    records = list(read_records(log_dir, on_damage=lambda *where: damage.append(where)))
    return records, damage


def test_kill_9_under_load_then_clean_restarts(tmp_path, processes):
    with Testbed(PLAN) as bed, Load(bed):
        for _ in range(KILLS):
            proc = Collector(processes, bed, tmp_path).proc
            assert ours_on(bed) == 1, f"got {ours_on(bed)} filters of ours; want 1"
            announced = announcements(tmp_path)
            wait_until(
                lambda announced=announced: announcements(tmp_path) > announced,
                RECORDS_SECONDS,
                "new announcements in the log (records flowing when killed)",
            )
            proc.kill()
            proc.wait(timeout=30)
            records, damage = read_with_damage(tmp_path)
            # Only the file being written when killed may end in a partial record.
            assert all(where[0] == log_files(tmp_path)[-1] for where in damage), f"got damage {damage}"
            assert len(damage) <= 1, f"got damage {damage}; want at most the record being written"
        final = Collector(processes, bed, tmp_path).proc
        assert ours_on(bed) == 1, f"got {ours_on(bed)} filters after {KILLS} kills; want 1"
        assert final.send_signal(signal.SIGTERM) or final.wait(timeout=30) == 0, "got a failed clean stop"
    records, damage = read_with_damage(tmp_path)
    assert damage == [], f"got damage {damage} after the clean run repaired and closed; want none"
    files = log_files(tmp_path)
    assert len(files) == KILLS + 1, f"got {len(files)} log files; want one per run"
    headers = [r for r in records if r["kind"] == "header"]
    assert len(headers) == len(files), f"got {len(headers)} headers for {len(files)} files"


def test_sigterm_under_load_drains_everything(tmp_path, processes):
    with Testbed(PLAN) as bed, Load(bed):
        proc = Collector(processes, bed, tmp_path).proc
        wait_until(lambda: announcements(tmp_path), RECORDS_SECONDS, "announcements in the log")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, f"got exit {proc.returncode}: {stderr}"
    records = list(read_records(tmp_path))
    stats = [r for r in records if r["kind"] == "stats"][-1]
    assert stats["lost"] == 0, f"got {stats['lost']} lost; want 0"
    assert stats["events"] == stats["kernel"]["events"], (
        f"got {stats['events']} events read; want all {stats['kernel']['events']} the kernel emitted"
    )


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)])


@pytest.fixture(scope="module")
def busy_capture(tmp_path_factory) -> Path:
    """Real MPTCP traffic with many announcements: more records than 64 KiB holds."""
    from tests.support.tcpdump import Tcpdump

    pcap = tmp_path_factory.mktemp("busy") / "busy.pcap"
    with Testbed() as bed, Tcpdump(bed.server, pcap, "-i", "any", "tcp"):
        bed.drive(20)
    return pcap


def test_disk_full_is_one_error_and_readable_logs(tiny_disk, busy_capture):
    result = subprocess.run(
        [ADDADDR, "replay", str(busy_capture), "--log-dir", str(tiny_disk / "logs")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # The line naming the kernel features comes first; then the one error.
    lines = [line for line in result.stderr.strip().splitlines() if "kernel program relies on" not in line]
    assert result.returncode == 1, f"got exit {result.returncode}: {result.stderr}"
    assert len(lines) == 1 and "No space left on device" in lines[0] and "records not written" in lines[0], (
        f"got {lines}; want one line saying the disk is full and how many records were not written"
    )
    unwritten = int(lines[0].split("; ")[1].split()[0])
    assert unwritten > 0, f"got {unwritten} records counted as not written"
    records, damage = read_with_damage(tiny_disk / "logs")
    assert damage == [], f"got damage {damage}; want every file readable to its end"
    assert records[0]["kind"] == "header" and len(records) > 1, "got no records before the disk filled"
    tail = subprocess.run(
        [ADDADDR, "tail", "--json", "--log-dir", str(tiny_disk / "logs")], capture_output=True, text=True, timeout=60
    )
    assert tail.returncode == 0 and all(json.loads(line) for line in tail.stdout.splitlines())
