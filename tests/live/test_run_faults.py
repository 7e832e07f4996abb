# SPDX-License-Identifier: MIT
"""Faults under a live `addaddr run`, in namespaces the tests make: a second run on its interface, its
interface deleted and back, its namespace deleted."""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.request

import pytest

from collector.lab.testbed import Testbed
from collector.logs.reader import read_records
from tests.support.collector_process import Collector, ours_on, run_command

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="attaching filters needs root"), pytest.mark.slow]

# How long a change may take to show: INTERFACE_CHECK_INTERVAL (0.5 s) and a loaded machine.
NOTICE_SECONDS = 5


def announced(traffic) -> int:
    return sum(c.announced for c in traffic.connections)


def logged_announcements(log_dir) -> int:
    return sum(r["kind"] == "add_addr" and not r["echo"] for r in read_records(log_dir))


def test_a_second_run_is_refused_and_the_first_sees_every_announcement(bed, tmp_path, processes):
    first = Collector(processes, bed, tmp_path / "first")
    second = subprocess.run(
        run_command(bed, tmp_path / "second"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    traffic = bed.drive(3)
    time.sleep(0.5)
    assert first.stop() == 0, f"got exit {first.proc.returncode}: {first.stderr}"
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 1, f"got exit {second.returncode}: {second.stderr}"
    assert len(lines) == 1 and f"already watched by addaddr run (pid {first.proc.pid})" in lines[0], f"got {lines}"
    assert not (tmp_path / "second").exists(), "got a log dir made by the refused run"
    assert not traffic.failures and announced(traffic) > 0
    assert logged_announcements(tmp_path / "first") == announced(traffic), "got the first run blinded"
    assert "replaced" not in "".join(first.started + [first.stderr]), "got a live run's filter called left behind"
    assert ours_on(bed) == 0, "got our filter left after the first run stopped"


def metric(url: str, name: str) -> float:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return float(re.search(rf"^{re.escape(name)} (\S+)$", text, re.M).group(1))


def wait_for_metric(url: str, name: str, want: float) -> float:
    deadline = time.monotonic() + NOTICE_SECONDS
    while (got := metric(url, name)) != want and time.monotonic() < deadline:
        time.sleep(0.1)
    return got


def move_out_and_back(bed: Testbed, away: str, url: str) -> None:
    """The server's interface leaves its namespace (its clsact and our filter go with its old life),
    is seen gone, then comes back and is set up again as the testbed had it."""
    link, srv = bed.links[0], ["ip", "-n", bed.server]
    subprocess.run([*srv, "link", "set", link.server_if, "netns", away], check=True, timeout=10)
    assert wait_for_metric(url, 'addaddr_interface_changes_total{state="gone"}', 1) == 1, "got the loss unseen"
    subprocess.run(["ip", "-n", away, "link", "set", link.server_if, "netns", bed.server], check=True, timeout=10)
    for command in (
        ["link", "set", link.server_if, "up"],
        ["addr", "add", f"{link.server4}/24", "dev", link.server_if],
        ["addr", "add", f"{link.server6}/64", "dev", link.server_if, "nodad"],
        ["route", "add", link.join4.rsplit(".", 1)[0] + ".0/24", "dev", link.server_if],
    ):
        subprocess.run([*srv, *command], check=True, timeout=10)


@pytest.mark.parametrize("mode", ["auto", "clsact"])
def test_an_interface_that_leaves_is_reported_and_watched_again_when_back(mode, bed, tmp_path, processes):
    """auto is tcx here: the link went with the old interface, and a new one is made."""
    away = f"{bed.name}-away"
    subprocess.run(["ip", "netns", "add", away], check=True, timeout=10)
    try:
        collector = Collector(processes, bed, tmp_path, "--metrics", "127.0.0.1:0", "--attach", mode)
        url = next(re.search(r"metrics at (\S+)", line).group(1) for line in collector.started if "metrics at" in line)
        before = bed.drive(1)
        move_out_and_back(bed, away, url)
        assert wait_for_metric(url, 'addaddr_interface_changes_total{state="back"}', 1) == 1, "got no reattach"
        assert ours_on(bed) == 1, f"got {ours_on(bed)} programs of ours on the interface back; want 1"
        after = bed.drive(2)
        time.sleep(0.5)
        assert collector.stop() == 0, f"got exit {collector.proc.returncode}: {collector.stderr}"
    finally:
        subprocess.run(["ip", "netns", "del", away], capture_output=True, timeout=10)
    iface = bed.server_interfaces[0]
    assert re.search(rf"{iface}: interface gone \(ifindex \d+\)", collector.stderr), collector.stderr
    assert re.search(rf"{iface}: interface back \(ifindex \d+\); watching it again", collector.stderr)
    changes = [r for r in read_records(tmp_path) if r["kind"] == "interface"]
    assert [(r["iface"], r["netns"], r["state"]) for r in changes] == [
        (iface, bed.server, "gone"),
        (iface, bed.server, "back"),
    ]
    assert set(changes[0]) == {"kind", "time", "iface", "ifindex", "netns", "state"}
    assert not before.failures and not after.failures
    assert logged_announcements(tmp_path) == announced(before) + announced(after), "got announcements missed"
    assert ours_on(bed) == 0, "got the reattached filter left after the run"


def test_after_user_an_interface_back_is_said_unwatched_once_and_the_run_goes_on(
    bed, tmp_path, reachable_dir, processes
):
    """auto is tcx here: linking needs CAP_NET_ADMIN (and --netns, CAP_SYS_ADMIN), gone after the drop."""
    away = f"{bed.name}-away"
    subprocess.run(["ip", "netns", "add", away], check=True, timeout=10)
    try:
        collector = Collector(processes, bed, reachable_dir, "--metrics", "127.0.0.1:0", "--user", "nobody")
        url = next(re.search(r"metrics at (\S+)", line).group(1) for line in collector.started if "metrics at" in line)
        move_out_and_back(bed, away, url)
        # Several checks (every 0.5 s) after the return: the refusal must be said once, not per check.
        time.sleep(3)
        attached = ours_on(bed)
        assert collector.stop() == 0, f"got exit {collector.proc.returncode}: {collector.stderr}"
    finally:
        subprocess.run(["ip", "netns", "del", away], capture_output=True, timeout=10)
    unwatched = [line for line in collector.stderr.splitlines() if "but not watched" in line]
    assert len(unwatched) == 1 and "Operation not permitted" in unwatched[0], f"got {collector.stderr}"
    assert attached == 0, f"got {attached} of ours on the interface back; want none after the drop"


def test_a_deleted_namespace_ends_the_run_with_status_1_and_its_final_records(bed, tmp_path, processes):
    collector = Collector(processes, bed, tmp_path)
    traffic = bed.drive(2)
    time.sleep(0.5)
    subprocess.run(["ip", "netns", "del", bed.server], check=True, timeout=10)
    status = collector.proc.wait(timeout=NOTICE_SECONDS + 5)
    stderr = collector.proc.stderr.read()
    assert status == 1, f"got exit {status}: {stderr}"
    assert f"network namespace {bed.server!r} was deleted" in stderr, stderr
    records = list(read_records(tmp_path))
    assert records[-1]["kind"] == "stats", f"got last record {records[-1]['kind']}; want the final stats"
    assert logged_announcements(tmp_path) == announced(traffic) > 0
