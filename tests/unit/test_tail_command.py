# SPDX-License-Identifier: MIT
"""`addaddr tail` over logs: JSON and readable forms, and a log whose last record was cut by a crash."""

from __future__ import annotations

import json

from click.testing import CliRunner

from collector.cli import main
from collector.logs.writer import LogWriter

ANNOUNCEMENT = {
    "kind": "add_addr",
    "time": 1700000000.25,
    "src": "10.200.0.2",
    "sport": 40000,
    "dst": "10.200.0.1",
    "dport": 5201,
    "ifindex": 3,
    "connection": 0x668B4134,
    "announcer": "client",
    "subflow": "initial",
    "version": 1,
    "echo": False,
    "address_id": 1,
    "address": "2002:c000:201::1",
    "port": None,
    "hmac": bytes.fromhex("544d6738bcd9ef69"),
    "family": "ipv6",
    "class": "6to4",
    "global": False,
    "embedded_ipv4": {"address": "192.0.2.1", "class": "documentation", "global": False},
}


def write_log(log_dir, count: int) -> None:
    with LogWriter(log_dir, {"host": "test", "interfaces": ["eth0"], "source": "live"}) as writer:
        for i in range(count):
            writer.write({**ANNOUNCEMENT, "address_id": i})


def test_json_shows_the_promised_fields(tmp_path):
    write_log(tmp_path, 1)
    result = CliRunner().invoke(main, ["tail", "--json", "--log-dir", str(tmp_path)])
    header, record = (json.loads(line) for line in result.output.splitlines())
    assert header["kind"] == "header", f"got {header['kind']}; want the file's header first"
    assert record["time"] == "2023-11-14T22:13:20.250000Z", f"got {record['time']}"
    assert record["connection"] == "668b4134", f"got {record['connection']}; want the token as monitor prints it"
    assert record["hmac"] == "544d6738bcd9ef69", f"got {record['hmac']}"
    assert record["embedded_ipv4"]["class"] == "documentation", f"got {record['embedded_ipv4']}"
    promised = {
        "time",
        "kind",
        "src",
        "sport",
        "dst",
        "dport",
        "connection",
        "announcer",
        "version",
        "echo",
        "address_id",
        "address",
        "port",
        "class",
        "global",
        "embedded_ipv4",
    }
    assert promised <= record.keys(), f"got no {promised - record.keys()}"


def test_readable_line_names_the_announcement(tmp_path):
    write_log(tmp_path, 1)
    line = CliRunner().invoke(main, ["tail", "--log-dir", str(tmp_path)]).output.splitlines()[1]
    for part in ("announce by client", "2002:c000:201::1", "6to4", "192.0.2.1 documentation", "668b4134"):
        assert part in line, f"got {line!r}; want {part!r} in it"


def test_cut_last_record_is_skipped_and_reported(tmp_path):
    write_log(tmp_path, 3)
    (path,) = tmp_path.iterdir()
    path.write_bytes(path.read_bytes()[:-5])
    result = CliRunner().invoke(main, ["tail", "--json", "--log-dir", str(tmp_path)])
    ids = [json.loads(line).get("address_id") for line in result.stdout.splitlines()[1:]]
    assert ids == [0, 1], f"got address ids {ids}; want the two whole records"
    assert "record cut short" in result.stderr, f"got stderr {result.stderr!r}; want the damage reported"
    assert result.exit_code == 1, f"got exit {result.exit_code}; want 1: a record was skipped"


def test_missing_log_dir_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["tail", "--log-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "no log directory" in result.stderr, f"got {result.exit_code}: {result.stderr}"
