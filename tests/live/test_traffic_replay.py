# SPDX-License-Identifier: MIT
"""scripts/replay-traffic: a capture replayed as real traffic gives the figures `addaddr replay` gives."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from collector.lab.testbed import Testbed
from collector.live.run import BackgroundRun, RunOptions
from tests.support.paths import ADDADDR, REPO
from tests.support.tcpdump import Tcpdump

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, BPF, tcpreplay)"), pytest.mark.slow]

# Differ by nature: the clocks (packet times vs the replay's wall clock).
CLOCK_KEYS = ("first_seen", "last_seen")


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    """Both directions of real MPTCP traffic, as tcpdump saw it on the server."""
    pcap = tmp_path_factory.mktemp("traffic") / "server.pcap"
    with (
        Testbed() as bed,
        Tcpdump(bed.server, pcap, "-i", "any", "tcp"),
        BackgroundRun(RunOptions(tuple(bed.server_interfaces), bed.server, str(pcap.parent / "live"))),
    ):
        bed.drive(4)
    return pcap


def figures(report: dict) -> dict:
    return {key: value for key, value in report.items() if key not in CLOCK_KEYS}


def test_replayed_traffic_reports_what_replay_reports(capture, tmp_path):
    live = subprocess.run(
        [str(REPO / "scripts" / "replay-traffic"), str(capture), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert live.returncode == 0, f"got exit {live.returncode}: {live.stderr}"
    assert ", 0 lost" in live.stderr, f"got {live.stderr.strip()}; want 0 lost at the default rate"
    subprocess.run([ADDADDR, "replay", str(capture), "--log-dir", str(tmp_path)], check=True, capture_output=True)
    replayed = subprocess.run(
        [ADDADDR, "report", "--log-dir", str(tmp_path), "--format", "json"], capture_output=True, text=True, check=True
    )
    got, want = figures(json.loads(live.stdout)), figures(json.loads(replayed.stdout))
    assert got["announcements"] > 0, "got no announcements in the capture"
    assert got == want, f"got {got}; want {want}"
