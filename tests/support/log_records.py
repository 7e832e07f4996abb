# SPDX-License-Identifier: MIT
"""Records as the collector writes them (docs/records.md): one valid record of every kind, builders of
the connection, add_addr and attempt records, a log written of them and read back, and the hand-built log
whose figures tests/unit/test_report.py works out by hand."""

from __future__ import annotations

from collector.addresses.classify import classify
from collector.logs.reader import read_records
from collector.logs.writer import LogWriter

SEGMENT = {
    "time": 1_700_000_000.5,
    "src": "192.0.2.1",
    "sport": 40000,
    "dst": "198.51.100.1",
    "dport": 443,
    "ifindex": 2,
    "connection": 0x1234ABCD,
}
# One valid record of every kind, as the collector writes them (docs/records.md).
VALID = {
    "header": {
        "kind": "header",
        "format": 2,
        "file_started": 1_700_000_000.0,
        "host": "h",
        "interfaces": ["eth0"],
        "netns": None,
        "collector_version": "0.1",
        "started": 1_700_000_000.0,
        "source": "live",
    },
    "add_addr": {
        "kind": "add_addr",
        **SEGMENT,
        "announcer": "client",
        "subflow": "initial",
        "version": 1,
        "echo": False,
        "address_id": 2,
        "address": "2002:c000:204::1",
        "port": None,
        "hmac": bytes(8),
        "family": "ipv6",
        "class": "6to4",
        "global": True,
        "embedded_ipv4": {"address": "192.0.2.4", "class": "documentation", "global": False},
    },
    "mp_join": {"kind": "mp_join", **SEGMENT, "token": 7, "address_id": 1, "backup": False, "form": "syn"},
    "remove_addr": {"kind": "remove_addr", **SEGMENT, "announcer": None, "address_ids": [1, 2]},
    "fastclose": {"kind": "fastclose", **SEGMENT},
    "tcp_rst": {"kind": "tcp_rst", **SEGMENT, "reason": 3},
    "malformed": {"kind": "malformed", **SEGMENT, "subtype": None, "reason": "short", "option": b"\x1e\x02"},
    "connection": {
        "kind": "connection",
        "time": 1.0,
        "connection": 5,
        "version": 1,
        "client": "a",
        "client_port": 1,
        "server": "b",
        "server_port": 2,
        "client_key": 3,
        "server_key": 4,
    },
    "connection_end": {"kind": "connection_end", "time": 1.0, "connection": 5, "reason": "closed"},
    "attempt": {
        "kind": "attempt",
        "time": 1.0,
        "version": 0,
        "client": "a",
        "client_port": 1,
        "server": "b",
        "server_port": 2,
        "reason": "idle",
    },
    "stats": {
        "kind": "stats",
        "time": 1.0,
        "kernel": {"packets": 1},
        "tracker": {},
        "events": 1,
        "announcements": 0,
        "lost": 0,
        "unwritten": 0,
    },
    "lost": {"kind": "lost", "time": 1.0, "count": 3},
    "interface": {"kind": "interface", "time": 1.0, "iface": "eth0", "ifindex": None, "netns": "ns", "state": "gone"},
}

# --- records built field by field ----------------------------------------------------------------------

T0 = 1700000000.0  # 2023-11-14T22:13:20Z


def connection(time: float, token: int, version: int = 1) -> dict:
    return {
        "kind": "connection",
        "time": time,
        "connection": token,
        "version": version,
        "client": "198.18.0.2",
        "client_port": 40000,
        "server": "198.18.0.1",
        "server_port": 443,
        "client_key": 2**63 + token,
        "server_key": 2**62 + token,
    }


def add_addr(
    time: float,
    token: int | None,
    address: str,
    *,
    announcer: str | None = "client",
    subflow: str | None = "initial",
    echo: bool = False,
    port: int | None = None,
) -> dict:
    # Class fields from the real classifier, as the Recorder fills them.
    c = classify(address)
    return {
        "kind": "add_addr",
        "time": time,
        "src": "198.18.0.2",
        "sport": 40000,
        "dst": "198.18.0.1",
        "dport": 443,
        "ifindex": 2,
        "connection": token,
        "announcer": announcer,
        "subflow": subflow,
        "version": 1,
        "echo": echo,
        "address_id": 1,
        "address": c.address,
        "port": port,
        "hmac": None if echo else b"\x01" * 8,
        "family": c.family,
        "class": c.address_class,
        "global": c.is_global,
        "embedded_ipv4": None if c.embedded_ipv4 is None else c.embedded_ipv4.as_json(),
    }


def attempt(time: float) -> dict:
    return {
        "kind": "attempt",
        "time": time,
        "version": 1,
        "client": "198.18.0.2",
        "client_port": 40001,
        "server": "198.18.0.1",
        "server_port": 443,
        "reason": "closed",
    }


def write_log(log_dir, records, host: str = "alpha", **writer_options) -> None:
    with LogWriter(log_dir, {"host": host, "interfaces": ["eth0"], "source": "live"}, **writer_options) as writer:
        for record in records:
            writer.write(record)


def lost_records(log_dir) -> list[int]:
    """The counts of the log's `lost` records, in order."""
    return [r["count"] for r in read_records(log_dir) if r["kind"] == "lost"]


# Five connections, tokens 1 to 5; what each announces is written next to it.
HAND_BUILT = [
    connection(T0 + 1, 1, version=1),
    connection(T0 + 2, 2, version=1),
    connection(T0 + 3, 3, version=0),
    connection(T0 + 4, 4, version=1),
    connection(T0 + 5, 5, version=0),
    attempt(T0 + 6),
    attempt(T0 + 7),
    # 1: private, its retransmission, then a global address with a port on a join subflow
    add_addr(T0 + 10, 1, "192.168.1.10"),
    add_addr(T0 + 11, 1, "192.168.1.10"),
    add_addr(T0 + 12, 1, "8.8.8.8", subflow="join", port=8080),
    add_addr(T0 + 13, 1, "192.168.1.10", announcer="server", echo=True),
    # 2: link-local IPv4; 6to4 embedding 192.0.2.1 (documentation); global IPv6
    add_addr(T0 + 20, 2, "169.254.7.7"),
    add_addr(T0 + 21, 2, "2002:c000:201::1"),
    add_addr(T0 + 22, 2, "2a00:1450::1"),
    # 3: private IPv4; link-local IPv6; IPv4-compatible embedding 8.8.8.8 (global)
    add_addr(T0 + 30, 3, "10.1.2.3"),
    add_addr(T0 + 31, 3, "fe80::1"),
    add_addr(T0 + 32, 3, "::808:808"),
    # 4: only its server announces; 5: nobody
    add_addr(T0 + 40, 4, "198.51.100.1", announcer="server"),
    # of no known subflow
    add_addr(T0 + 50, None, "192.168.9.9", announcer=None, subflow=None),
    {"kind": "lost", "time": T0 + 60, "count": 3},
    {"kind": "lost", "time": T0 + 61, "count": 4},
    {"kind": "connection_end", "time": T0 + 70, "connection": 1, "reason": "closed"},
]
