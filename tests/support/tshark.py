# SPDX-License-Identifier: MIT
"""tshark: an independent decoding of a capture, counted into the study's figures with nothing of ours
but the classifier, and compared with what `addaddr report` says of the same capture."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from ipaddress import ip_address
from pathlib import Path

import pytest

from collector.addresses.classify import classify

TSHARK_FIELDS = (
    "tcp.stream",
    "mptcp.stream",
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tcp.options.mptcp.subtype",
    "tcp.options.mptcp.version",
    "tcp.options.mptcp.recvkey",
    "tcp.options.mptcp.echo",
    "tcp.options.mptcp.ipv4",
    "tcp.options.mptcp.ipv6",
)
ADD_ADDR, MP_CAPABLE = 3, 0


def tshark_figures(pcap: Path) -> dict:
    """The study's figures counted from tshark's fields, with nothing of ours but the classifier.

    A connection is tshark's mptcp.stream (joins are tied to it by token, from the keys it saw);
    it counts once a segment without SYN carries an MP_CAPABLE with the receiver's key (third ACK
    or first data). A subflow's client is the sender of its SYN; an ADD_ADDR is the client's when
    sent by it. Echoes (E flag) are not announcements.
    """
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (scripts/setup --test installs it)")
    command = [
        "tshark",
        "-r",
        str(pcap),
        "-o",
        "mptcp.analyze_mptcp:TRUE",
        "-Y",
        f"tcp.flags.syn == 1 || tcp.options.mptcp.subtype == {MP_CAPABLE} || tcp.options.mptcp.subtype == {ADD_ADDR}",
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-E",
        "aggregator=,",
    ]
    for name in TSHARK_FIELDS:
        command += ["-e", name]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"got tshark exit {result.returncode}: {result.stderr.strip()}"
    client_of: dict[str, tuple[str, str]] = {}  # tcp.stream -> the SYN's sender
    versions: dict[str, int] = {}  # mptcp.stream -> version, of the connections that completed
    announced = []  # (mptcp.stream, address) of every client non-echo ADD_ADDR, retransmissions included
    for line in result.stdout.splitlines():
        row = dict(zip(TSHARK_FIELDS, line.split("\t")))
        sender = (row["ip.src"] or row["ipv6.src"], row["tcp.srcport"])
        subtypes = [int(s) for s in row["tcp.options.mptcp.subtype"].split(",") if s]
        syn, ack = row["tcp.flags.syn"] in ("1", "True"), row["tcp.flags.ack"] in ("1", "True")
        if syn and not ack:
            client_of[row["tcp.stream"]] = sender
        if MP_CAPABLE in subtypes and not syn and row["tcp.options.mptcp.recvkey"]:
            versions.setdefault(row["mptcp.stream"], int(row["tcp.options.mptcp.version"].split(",")[0]))
        if ADD_ADDR not in subtypes:
            continue
        # One ADD_ADDR a segment, as Linux sends them: with two, tshark's per-field lists could not be paired.
        assert subtypes.count(ADD_ADDR) == 1, f"got {subtypes.count(ADD_ADDR)} ADD_ADDR in one segment: {line}"
        if row["tcp.options.mptcp.echo"] == "1" or client_of.get(row["tcp.stream"]) != sender:
            continue
        address = row["tcp.options.mptcp.ipv4"] or row["tcp.options.mptcp.ipv6"]
        announced.append((row["mptcp.stream"], ip_address(address)))
    pairs = {(stream, address) for stream, address in announced if stream in versions}
    figures = {
        "connections": len(versions),
        "versions": {f"v{v}": n for v, n in sorted(Counter(versions.values()).items())},
        "connections_announcing": len({stream for stream, _ in pairs}),
        "announcements": len(announced),
    }
    for family, version in (("ipv4", 4), ("ipv6", 6)):
        addresses = [address for _, address in pairs if address.version == version]
        figures[family] = {
            "addresses": len(addresses),
            "classes": dict(Counter(classify(a).address_class for a in addresses)),
        }
    return figures


def assert_report_matches_tshark(got: dict, want: dict) -> None:
    for key in ("connections", "connections_announcing", "announcements"):
        assert got[key] == want[key], f"got {key} {got[key]}; want {want[key]} (tshark)"
    versions = {v: n for v, n in got["versions"].items() if n}
    assert versions == want["versions"], f"got versions {versions}; want {want['versions']} (tshark)"
    for family in ("ipv4", "ipv6"):
        for key in ("addresses", "classes"):
            assert got[family][key] == want[family][key], (
                f"got {family}.{key} {got[family][key]}; want {want[family][key]} (tshark)"
            )
