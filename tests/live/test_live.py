# SPDX-License-Identifier: MIT
"""`addaddr run` on real kernel MPTCP traffic in namespaces, with tcpdump and the kernel's own
`ip mptcp monitor` as witnesses."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from collector.addresses.classify import classify
from collector.lab.testbed import Testbed
from collector.live.run import BackgroundRun, RunOptions
from tests.support.paths import ADDADDR
from tests.support.tcpdump import Tcpdump

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="live tests need root (namespaces, BPF)"), pytest.mark.slow]

CONNECTIONS = 12  # per client and family
# `... IP6 fd00:200::2.49884 > fd00:200::1.5201: ... mptcp 16 add-addr v1 id 1 10.1.2.3 hmac 0x7b81..`
SEGMENT = re.compile(r" IP6? (\S+)\.(\d+) > (\S+)\.(\d+):")
TCPDUMP_ADD_ADDR = re.compile(r"mptcp \d+ add-addr (v\d)(-echo)? id (\d+) (\S+?)(?: hmac 0x([0-9a-f]+))?(?=[,\]])")
MONITOR_ANNOUNCED = re.compile(r"ANNOUNCED\] token=([0-9a-f]+) remid=(\d+) daddr[46]=(\S+)")


def tcpdump_announcements(pcap: Path) -> Counter:
    text = subprocess.run(["tcpdump", "-r", str(pcap), "-nn"], capture_output=True, text=True).stdout
    seen = Counter()
    for line in text.splitlines():
        segment = SEGMENT.search(line)
        for _version, echo, address_id, address, hmac in TCPDUMP_ADD_ADDR.findall(line):
            seen[
                (
                    *segment.groups(),
                    int(address_id),
                    ipaddress.ip_address(address),
                    bool(echo),
                    int(hmac, 16) if hmac else None,
                )
            ] += 1
    return seen


@pytest.fixture(scope="module", params=["auto", "clsact"])
def live_run(request, tmp_path_factory):
    """One testbed, collector, tcpdump and monitor per attach mode (auto is tcx on kernels >= 6.6;
    clsact is what auto falls back to elsewhere): the traffic takes a few seconds."""
    tmp = tmp_path_factory.mktemp("live")
    log_dir, pcap = tmp / "logs", tmp / "server-ingress.pcap"
    with Testbed() as bed:
        # Started before the collector, whose loading gives it time to subscribe.
        monitor = subprocess.Popen(
            ["ip", "netns", "exec", bed.server, "ip", "mptcp", "monitor"], stdout=subprocess.PIPE, text=True
        )
        options = RunOptions(
            tuple(bed.server_interfaces), bed.server, str(log_dir), stats_interval=1.0, attach=request.param
        )
        try:
            with Tcpdump(bed.server, pcap, "-i", "any", "-Q", "in", "tcp"), BackgroundRun(options) as run:
                traffic = bed.drive(CONNECTIONS)
        finally:
            monitor.terminate()
            monitor_text = monitor.communicate(timeout=10)[0]
        yield {
            "bed": bed,
            "traffic": traffic,
            "log_dir": log_dir,
            "pcap": pcap,
            "monitor": monitor_text,
            "session": run.session,
        }


def tail_json(log_dir: Path) -> list[dict]:
    out = subprocess.run(
        [ADDADDR, "tail", "--json", "--log-dir", str(log_dir)], capture_output=True, text=True, check=True
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_traffic_announced_what_the_testbed_planned(live_run):
    traffic = live_run["traffic"]
    assert not traffic.failures, f"got failures {traffic.failures}; want none"
    per_connection = {c.announced for c in traffic.connections}
    assert per_connection == {7}, f"got announcements per connection {per_connection}; want {{7}}"


def test_every_add_addr_tcpdump_saw_is_logged(live_run):
    want = tcpdump_announcements(live_run["pcap"])
    records = [r for r in tail_json(live_run["log_dir"]) if r["kind"] == "add_addr"]
    got = Counter(
        (
            r["src"],
            str(r["sport"]),
            r["dst"],
            str(r["dport"]),
            r["address_id"],
            ipaddress.ip_address(r["address"]),
            r["echo"],
            int(r["hmac"], 16) if r["hmac"] else None,
        )
        for r in records
    )
    assert sum(want.values()) >= 2 * 2 * CONNECTIONS * 7, f"tcpdump saw only {sum(want.values())} ADD_ADDR"
    assert got == want, (
        f"got {sum(got.values())} ADD_ADDR, tcpdump {sum(want.values())}; differences {got - want} / {want - got}"
    )


def test_announcements_carry_connection_announcer_and_class(live_run):
    tokens = {(c.client_end[0], str(c.client_end[1])): f"{c.token:08x}" for c in live_run["traffic"].connections}
    records = [r for r in tail_json(live_run["log_dir"]) if r["kind"] == "add_addr"]
    for r in records:
        assert r["announcer"] == "client", f"got announcer {r['announcer']}; want client: {r}"
        c = classify(r["address"])
        assert (r["class"], r["global"]) == (c.address_class, c.is_global), f"got {r['class']}; want {c.address_class}"
        if (r["src"], str(r["sport"])) in tokens:  # on the initial subflow
            assert r["connection"] == tokens[(r["src"], str(r["sport"]))], f"got {r['connection']}; want its token"
        else:
            assert r["connection"] in tokens.values(), f"got {r['connection']} on a join subflow; want a known token"
    connections = {r["connection"] for r in records}
    assert connections == set(tokens.values()), f"got {len(connections)} announcing connections; want {len(tokens)}"


def test_each_connection_is_logged_once(live_run):
    want = Counter(f"{c.token:08x}" for c in live_run["traffic"].connections)
    got = Counter(r["connection"] for r in tail_json(live_run["log_dir"]) if r["kind"] == "connection")
    assert got == want, f"got connection records {sum(got.values())} for {len(got)} tokens; want {len(want)} once each"


def test_join_subflows_are_attributed(live_run):
    tokens = {f"{c.token:08x}" for c in live_run["traffic"].connections if c.subflows}
    joins = [r for r in tail_json(live_run["log_dir"]) if r["kind"] == "mp_join"]
    assert {j["connection"] for j in joins} == tokens, f"got joins for {len(joins)}; want one per IPv4 connection"


def test_kernel_monitor_announcements_are_among_ours(live_run):
    ours = {
        (r["connection"], r["address_id"], r["address"])
        for r in tail_json(live_run["log_dir"])
        if r["kind"] == "add_addr" and r["announcer"] == "client"
    }
    kernel = {
        (token.zfill(8), int(remid), str(ipaddress.ip_address(address)))
        for token, remid, address in MONITOR_ANNOUNCED.findall(live_run["monitor"])
    }
    assert kernel, "ip mptcp monitor reported no ANNOUNCED event"
    assert kernel <= ours, f"kernel announcements missing from ours: {sorted(kernel - ours)[:5]}"


def test_nothing_lost_and_counters_move(live_run):
    session = live_run["session"]
    assert session is not None, "the collector thread did not return a session"
    assert session.lost_samples == 0, f"got {session.lost_samples} lost; want 0"
    stats = [r for r in tail_json(live_run["log_dir"]) if r["kind"] == "stats"][-1]
    kernel = stats["kernel"]
    assert kernel["events"] == session.events, f"got kernel events {kernel['events']}; want {session.events}"
    assert kernel["event_errors"] == 0 and kernel["unparsed"] == 0, f"got {kernel}"
    assert kernel["subtype_3"] >= session.announcements, f"got ADD_ADDR count {kernel['subtype_3']}"
