# SPDX-License-Identifier: MIT
"""Real kernel MPTCP on a testbed, seen twice: by the live collector at the server's ingress and by tcpdump
there; the capture, replayed through the command once the testbed is gone, must report what the live
collector reported and what tshark decodes from the same file."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from collector.lab.testbed import Testbed
from collector.live.run import BackgroundRun, RunOptions
from tests.support.commands import assert_succeeded, replay, replay_stats, report, tail
from tests.support.tcpdump import Tcpdump
from tests.support.tshark import assert_report_matches_tshark, tshark_figures

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the testbed and replay's kernel program need root"),
    pytest.mark.slow,
]

# Live, a record's time is the kernel's clock at the hook; replayed, the packet's tcpdump timestamp.
CLOCK_KEYS = ("first_seen", "last_seen")
CONNECTIONS = 3  # per testbed client and family: 12 connections, 84 announcements


def without(figures: dict, keys) -> dict:
    return {k: v for k, v in figures.items() if k not in keys}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """One testbed: the live collector on the server's ingress while tcpdump captures both directions
    there; then the capture replayed through the command, after the testbed is gone."""
    tmp = tmp_path_factory.mktemp("generated")
    pcap, live_logs = tmp / "server.pcap", tmp / "live"
    live_logs.mkdir()
    with (
        Testbed() as bed,
        Tcpdump(bed.server, pcap, "-i", "any", "tcp") as tcpdump,
        BackgroundRun(RunOptions(tuple(bed.server_interfaces), bed.server, str(live_logs))) as run,
    ):
        traffic = bed.drive(CONNECTIONS)
    replayed = replay([pcap], tmp / "replay")
    return {
        "pcap": pcap,
        "traffic": traffic,
        "session": run.session,
        "tcpdump": tcpdump,
        "live": tmp / "live",
        "replay": tmp / "replay",
        "result": replayed,
    }


def test_generated_capture_is_whole(generated):
    traffic = generated["traffic"]
    assert not traffic.failures, f"got testbed failures {traffic.failures}; want none"
    announced = Counter(c.announced for c in traffic.connections)
    assert announced == {7: 4 * CONNECTIONS}, f"got connections by announcements {announced}; want 7 each"
    assert generated["tcpdump"].dropped == 0, f"got tcpdump {generated['tcpdump'].stderr!r}; want 0 dropped"
    assert generated["session"].lost_samples == 0, f"got live {generated['session'].lost_samples} lost; want 0"
    assert_succeeded(generated["result"])
    captured = generated["tcpdump"].captured
    packets = replay_stats(tail(generated["replay"]))["replay"]["packets"]
    assert packets == captured, f"got {packets} packets replayed; want {captured}, all tcpdump captured"


def test_replay_reports_what_the_live_collector_reported(generated):
    got, want = report(generated["replay"]), report(generated["live"])
    assert want["connections"] == len(generated["traffic"].connections), (
        f"got live connections {want['connections']}; want {len(generated['traffic'].connections)} (testbed)"
    )
    # The client figures must be equal, key by key.
    for key in (
        "connections",
        "attempts",
        "connections_announcing",
        "announcements",
        "ipv4",
        "ipv6",
        "distinct_addresses",
        "with_port",
        "versions",
        "unattributed",
        "lost_events",
    ):
        assert got[key] == want[key], f"got {key} {got[key]} replayed; want {want[key]} as live"
    # server_announced may legitimately differ: live, the hook at the server's ingress sees only
    # client-to-server segments, so a server's own announcements reach only the replay (which has
    # both directions). The testbed's server announces nothing (it has no signal endpoint; it only
    # echoes, and echoes never count), so here both must be empty and so equal.
    for name, figures in (("replayed", got), ("live", want)):
        announced = figures["server_announced"]["announcements"]
        assert announced == 0, f"got {announced} server announcements {name}; want 0 (the server announces none)"
    assert without(got, CLOCK_KEYS) == without(want, CLOCK_KEYS), (
        f"got {without(got, CLOCK_KEYS)} replayed; want {without(want, CLOCK_KEYS)} as live"
    )


def test_replay_reports_what_tshark_decodes(generated):
    got, want = report(generated["replay"]), tshark_figures(generated["pcap"])
    assert want["announcements"] >= 4 * CONNECTIONS * 7, f"tshark found only {want['announcements']} announcements"
    assert want["ipv4"]["addresses"] and want["ipv6"]["addresses"], f"tshark found {want}: want both families"
    assert_report_matches_tshark(got, want)
