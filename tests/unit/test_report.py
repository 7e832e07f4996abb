# SPDX-License-Identifier: MIT
"""`addaddr report` and collector.report.figures over real log files: figures worked out by hand, the client /
server / echo / retransmission split, hosts kept apart, time windows, every format, the plot, and
memory that does not grow with the records."""

from __future__ import annotations

import csv
import io
import itertools
import json
import subprocess
import sys
import tracemalloc

import msgpack
import pytest

from collector.cli import report_command
from collector.report.figures import parse_time, report
from collector.report.formats import FORMATS
from tests.support.commands import json_report, run_report
from tests.support.log_records import HAND_BUILT, T0, add_addr, connection, write_log

JSON_KEYS = [
    "connections",
    "attempts",
    "connections_announcing",
    "connections_announcing_share",
    "announcements",
    "ipv4",
    "ipv6",
    "distinct_addresses",
    "with_port",
    "versions",
    "server_announced",
    "unattributed",
    "lost_events",
    "first_seen",
    "last_seen",
]
FAMILY_KEYS = ["addresses", "classes", "global_share", "embedded"]


# --- the hand-built log (tests/support/log_records.py) ------------------------------------------------


def test_hand_built_log_gives_the_figures_worked_out_by_hand(tmp_path):
    write_log(tmp_path, HAND_BUILT)
    got = report(tmp_path)
    want = {
        "connections": 5,
        "attempts": 2,
        "connections_announcing": 3,  # 1, 2 and 3
        "connections_announcing_share": 3 / 5,
        "announcements": 9,  # 3 on each of 1, 2, 3; the retransmission included
        "ipv4": {
            "addresses": 4,
            "classes": {"private": 2, "global": 1, "link-local": 1},
            "global_share": 1 / 4,
            "embedded": {},
        },
        "ipv6": {
            "addresses": 4,
            "classes": {"global": 1, "link-local": 1, "ipv4-compatible": 1, "6to4": 1},
            "global_share": 1 / 4,
            "embedded": {"global": 1, "documentation": 1},
        },
        "distinct_addresses": 8,
        "with_port": 1,
        "versions": {"v0": 2, "v1": 3},
        "server_announced": {
            "announcements": 1,
            "ipv4": {"addresses": 1, "classes": {"documentation": 1}, "global_share": 0.0, "embedded": {}},
            "ipv6": {"addresses": 0, "classes": {}, "global_share": None, "embedded": {}},
        },
        "unattributed": 1,
        "lost_events": 7,
        "first_seen": "2023-11-14T22:13:21.000000Z",
        "last_seen": "2023-11-14T22:14:30.000000Z",
    }
    assert got == want, f"got {got}"
    assert list(got["ipv6"]["classes"]) == ["global", "link-local", "ipv4-compatible", "6to4"], (
        "want classes of equal count in vocabulary order, for reports that compare across runs"
    )


def test_echoes_server_announcements_and_retransmissions_do_not_inflate_client_figures(tmp_path):
    write_log(
        tmp_path,
        [
            connection(T0, 7),
            add_addr(T0 + 1, 7, "192.168.1.10"),  # the announcement
            add_addr(T0 + 2, 7, "192.168.1.10"),  # retransmitted on the initial subflow
            add_addr(T0 + 3, 7, "192.168.1.10", subflow="join"),  # and again on a join subflow
            add_addr(T0 + 4, 7, "192.168.1.10", announcer="server", echo=True),  # the server's echo of it
            add_addr(T0 + 5, 7, "203.0.113.5", announcer="server"),  # the server's own
            add_addr(T0 + 6, 7, "203.0.113.5", announcer="server", subflow="join"),  # retransmitted
            add_addr(T0 + 7, 7, "203.0.113.5", echo=True),  # the client's echo of it
            connection(T0 + 8, 8),
            add_addr(T0 + 9, 8, "192.168.1.10"),  # the same address on another connection: another pair
        ],
    )
    got = report(tmp_path)
    client = (
        got["announcements"],
        got["ipv4"]["addresses"],
        got["ipv4"]["classes"],
        got["distinct_addresses"],
        got["connections_announcing"],
        got["ipv6"]["addresses"],
    )
    assert client == (4, 2, {"private": 2}, 1, 2, 0), f"got client figures {client}"
    server = got["server_announced"]
    assert (server["announcements"], server["ipv4"]["addresses"], server["ipv4"]["classes"]) == (
        2,
        1,
        {"documentation": 1},
    ), f"got server figures {server}"
    assert got["unattributed"] == 0, f"got {got['unattributed']}"


def test_equal_tokens_of_two_hosts_are_two_connections(tmp_path):
    write_log(tmp_path / "a", [connection(T0, 0x668B4134), add_addr(T0 + 1, 0x668B4134, "10.0.0.1")], host="a")
    write_log(
        tmp_path / "b",
        [
            connection(T0, 0x668B4134),
            add_addr(T0 + 1, 0x668B4134, "10.0.0.1"),
            add_addr(T0 + 2, 0x668B4134, "10.0.0.2"),
        ],
        host="b",
    )
    got = json_report("--log-dir", str(tmp_path / "a"), "--log-dir", str(tmp_path / "b"))
    figures = (got["connections"], got["connections_announcing"], got["ipv4"]["addresses"], got["distinct_addresses"])
    assert figures == (2, 2, 3, 2), f"got connections, announcing, pairs, distinct {figures}"


def test_a_host_that_announces_does_not_make_the_other_hosts_connection_announce(tmp_path):
    write_log(tmp_path / "a", [connection(T0, 5)], host="a")
    write_log(tmp_path / "b", [connection(T0, 5), add_addr(T0 + 1, 5, "10.0.0.1")], host="b")
    got = report([tmp_path / "a", tmp_path / "b"])
    assert (got["connections"], got["connections_announcing"]) == (2, 1), f"got {got}"


# --- time windows -------------------------------------------------------------------------------------

WINDOW_LOG = [
    connection(T0, 1),
    add_addr(T0 + 10, 1, "10.0.0.1"),
    connection(T0 + 20, 2),
    add_addr(T0 + 20, 2, "10.0.0.2"),
    add_addr(T0 + 30, 2, "10.0.0.3"),
]


@pytest.mark.parametrize(
    "since, until",
    [
        ("2023-11-14T22:13:30Z", "2023-11-14T22:13:50Z"),
        ("2023-11-14T22:13:30", "2023-11-14T22:13:50"),  # naive: UTC
        ("2023-11-14T23:13:30+01:00", "2023-11-14T23:13:50+01:00"),
        (str(T0 + 10), str(T0 + 30)),
    ],
)
def test_since_is_inclusive_until_exclusive_in_every_time_form(tmp_path, since, until):
    write_log(tmp_path, WINDOW_LOG)
    got = json_report("--log-dir", str(tmp_path), "--since", since, "--until", until)
    # T0+10 and both records at T0+20 are in; T0 (before) and T0+30 (the until bound) are out.
    figures = (got["connections"], got["announcements"], got["first_seen"], got["last_seen"])
    assert figures == (1, 2, "2023-11-14T22:13:30.000000Z", "2023-11-14T22:13:40.000000Z"), f"got {figures}"
    assert got["connections_announcing"] == 1, (
        "want only connection 2: connection 1 started before the window, so it is not counted as one"
    )


def test_parse_time_forms():
    assert parse_time("2023-11-14T22:13:20Z") == T0
    assert parse_time("2023-11-14 22:13:20") == T0
    assert parse_time("2023-11-14T23:13:20.5+01:00") == T0 + 0.5
    assert parse_time("1700000000.5") == T0 + 0.5
    assert parse_time("2023-11-14") == T0 - (22 * 3600 + 13 * 60 + 20)


@pytest.mark.parametrize("option", ["--since", "--until"])
@pytest.mark.parametrize("value", ["yesterday", "2023-13-01", "nan", ""])
def test_unreadable_time_is_one_line_usage_error(tmp_path, option, value):
    write_log(tmp_path, WINDOW_LOG)
    result = run_report("--log-dir", str(tmp_path), option, value)
    assert result.exit_code == 2, f"got exit {result.exit_code}"
    assert result.stderr.startswith(f"addaddr: error: {option}: cannot read") and result.stderr.count("\n") == 1, (
        f"got stderr {result.stderr!r}"
    )
    assert result.stdout == "", f"got stdout {result.stdout!r}; want no report"


# --- formats ------------------------------------------------------------------------------------------


def test_every_format_of_the_cli_has_a_renderer():
    (option,) = [p for p in report_command.params if p.name == "form"]
    assert tuple(option.type.choices) == FORMATS, f"got {option.type.choices}; want {FORMATS}"


def test_json_has_exactly_the_figures(tmp_path):
    write_log(tmp_path, HAND_BUILT)
    got = json_report("--log-dir", str(tmp_path))
    assert list(got) == JSON_KEYS, f"got keys {list(got)}"
    for family in ("ipv4", "ipv6"):
        assert list(got[family]) == FAMILY_KEYS, f"got {family} keys {list(got[family])}"
        assert list(got["server_announced"][family]) == FAMILY_KEYS
    assert list(got["server_announced"]) == ["announcements", "ipv4", "ipv6"]
    assert got == report(tmp_path), "want the CLI's JSON to be the library's dict"


def test_csv_is_section_key_value_rows(tmp_path):
    write_log(tmp_path, HAND_BUILT)
    result = run_report("--log-dir", str(tmp_path), "--format", "csv")
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["section", "key", "value"], f"got header {rows[0]}"
    assert all(len(row) == 3 for row in rows), "want three cells on every row"
    cells = {(section, key): value for section, key, value in rows[1:]}
    for cell, value in {
        ("ipv4.classes", "private"): "2",
        ("summary", "connections"): "5",
        ("ipv6.embedded", "documentation"): "1",
        ("versions", "v0"): "2",
        ("server_announced.ipv4.classes", "documentation"): "1",
        ("ipv4", "global_share"): "0.25",
        ("server_announced.ipv6", "global_share"): "",
    }.items():
        assert cells.get(cell) == value, f"got {cell} = {cells.get(cell)!r}; want {value!r}"


def test_markdown_has_the_class_tables(tmp_path):
    write_log(tmp_path, HAND_BUILT)
    result = run_report("--log-dir", str(tmp_path), "--format", "markdown")
    lines = result.stdout.splitlines()
    for row in ("| private | 2 | 50.0% |", "| 6to4 | 1 | 25.0% |", "| --- | ---: | ---: |"):
        assert row in lines, f"want the row {row!r} in\n{result.stdout}"


def test_table_opens_with_the_studys_sentences(tmp_path):
    write_log(tmp_path, HAND_BUILT)
    result = run_report("--log-dir", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    first = result.stdout.splitlines()[0]
    want = (
        "Over the 5 observed MPTCP connections, 3 of them (60%) announced at least one address. "
        "25% of the announced IPv4 addresses were globally routable; the other 75% were private (50%) "
        "or link-local (25%). 25% of the announced IPv6 addresses were globally routable."
    )
    assert first == want, f"got {first!r}"
    for part in ("CLASS", "ipv4-compatible", "IPv4 addresses embedded in those IPv6 addresses", "Other figures"):
        assert part in result.stdout, f"want {part!r} in the table"


@pytest.mark.parametrize("form", FORMATS)
def test_empty_log_renders(tmp_path, form):
    write_log(tmp_path, [])
    result = run_report("--log-dir", str(tmp_path), "--format", form)
    assert result.exit_code == 0 and result.stdout, f"got exit {result.exit_code}: {result.stderr}"
    if form == "table":
        assert result.stdout.startswith("No MPTCP connection was observed."), result.stdout


def test_damaged_log_is_reported_and_the_rest_counted(tmp_path):
    write_log(tmp_path, HAND_BUILT)
    (path,) = tmp_path.iterdir()
    path.write_bytes(path.read_bytes()[:-5])  # the last record, connection_end, cut by a crash
    result = run_report("--log-dir", str(tmp_path), "--format", "json")
    assert result.exit_code == 1, f"got exit {result.exit_code}; want 1: some input could not be used"
    assert json.loads(result.stdout)["announcements"] == 9, "want the records before the damage counted"
    assert "record cut short" in result.stderr and result.stderr.count("\n") == 1, f"got {result.stderr!r}"


def test_missing_log_dir_is_one_line(tmp_path):
    result = run_report("--log-dir", str(tmp_path / "nowhere"))
    assert result.exit_code == 1 and "no log directory" in result.stderr, f"got {result.exit_code}: {result.stderr}"


# --- the plot -----------------------------------------------------------------------------------------


# matplotlib's first colour, which it fills the bars with.
BAR_COLOUR = (0x1F, 0x77, 0xB4)


def test_plot_is_a_png_with_bars_in_both_panels(tmp_path):
    # Not skipped when missing: `scripts/setup --test` installs [ci], [plot] included, so CI tests --plot.
    try:
        from PIL import Image  # a dependency of matplotlib
    except ImportError:
        pytest.fail("matplotlib (with Pillow) is missing: scripts/setup --test installs the [plot] extra")
    write_log(tmp_path / "log", HAND_BUILT)
    png = tmp_path / "shares.png"
    result = run_report("--log-dir", str(tmp_path / "log"), "--plot", str(png))
    assert result.exit_code == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "want a PNG file"
    assert 10_000 < png.stat().st_size < 1_000_000, f"got {png.stat().st_size} bytes; want a plot's size"
    with Image.open(png) as image:
        image.load()  # decodes every chunk: a truncated or corrupt file fails here
        pixels = image.convert("RGB")
    assert pixels.size == (1100, 450), f"got {pixels.size}; want 11 x 4.5 inches at 100 dpi"
    width, height = pixels.size
    halves = ((0, width // 2), (width // 2, width))
    bars = [
        sum(pixels.getpixel((x, y)) == BAR_COLOUR for x in range(*half) for y in range(0, height, 2)) for half in halves
    ]
    assert all(count > 500 for count in bars), f"got {bars} bar pixels in the IPv4 and IPv6 panels; want bars in both"


# matplotlib made unimportable in a fresh interpreter, whatever is installed.
WITHOUT_MATPLOTLIB = """
import sys

class NoMatplotlib:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "matplotlib":
            raise ModuleNotFoundError(f"No module named {name!r}")

sys.meta_path.insert(0, NoMatplotlib())
from collector.cli import main
main(prog_name="addaddr")
"""


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path):
    write_log(tmp_path / "log", HAND_BUILT)
    png = tmp_path / "shares.png"
    command = [
        sys.executable,
        "-c",
        WITHOUT_MATPLOTLIB,
        "report",
        "--log-dir",
        str(tmp_path / "log"),
        "--plot",
        str(png),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, f"got exit {result.returncode}: {result.stderr}"
    assert result.stderr == "addaddr: error: --plot needs matplotlib: .venv/bin/pip install 'addaddr[plot]'\n", (
        f"got stderr {result.stderr!r}"
    )
    assert result.stdout == "" and not png.exists(), "want it to fail before reading the logs"


# --- streaming ----------------------------------------------------------------------------------------

LARGE_RECORDS = 300_000
CONNECTIONS = 100
# Decoding needs the reader's 1 MiB chunk and msgpack's buffer; 300,000 kept records would take >100 MB.
PEAK_LIMIT = 6 * 2**20


def large_log(log_dir) -> None:
    # Ten addresses cycling over a hundred connections, a quarter announced by servers.
    templates = [add_addr(T0, 0, f"10.0.{i}.1", announcer="server" if i % 4 == 0 else "client") for i in range(10)]
    records = (
        {**templates[i % 10], "time": T0 + i, "connection": i % CONNECTIONS} for i in range(LARGE_RECORDS - CONNECTIONS)
    )
    write_log(
        log_dir,
        itertools.chain((connection(T0, token) for token in range(CONNECTIONS)), records),
        sync_records=LARGE_RECORDS,
        max_bytes=2**40,
        max_age=1e9,
    )


@pytest.mark.slow
def test_memory_does_not_grow_with_the_records(tmp_path):
    large_log(tmp_path)
    tracemalloc.start()
    try:
        got = report(tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (
        got["connections"] == CONNECTIONS
        and got["announcements"] + got["server_announced"]["announcements"] == LARGE_RECORDS - CONNECTIONS
    ), f"got {got}"
    assert peak < PEAK_LIMIT, f"peak {peak / 2**20:.1f} MiB over {LARGE_RECORDS} records; want < 6 MiB"


def test_files_read_in_parallel_give_the_same_report(tmp_path, monkeypatch):
    """Big logs are read one file per process and merged: the figures and damage must not change."""
    import collector.report.figures as report_module

    records = []
    for i in range(400):
        token = 1000 + i // 4
        records += [
            connection(float(i), token, i % 2),
            add_addr(float(i), token, f"10.0.{i % 7}.1" if i % 3 else f"2002:c000:2{i % 5}::1"),
        ]
    write_log(tmp_path, records, max_bytes=4096)
    files = sorted(tmp_path.iterdir())
    assert len(files) > 3, f"got {len(files)} files; want several, one per worker"
    files[1].write_bytes(files[1].read_bytes()[:-3])  # a damaged file in the middle
    serial_damage, parallel_damage = [], []
    serial = report(tmp_path, on_damage=lambda *where: serial_damage.append(where))
    monkeypatch.setattr(report_module, "PARALLEL_BYTES", 0)
    parallel = report(tmp_path, on_damage=lambda *where: parallel_damage.append(where))
    assert parallel == serial, f"got {parallel}; want {serial}"
    assert parallel_damage == serial_damage and len(serial_damage) == 1, f"got {parallel_damage}; want {serial_damage}"


def _serial_and_parts(log_dir, monkeypatch, part_bytes: int) -> tuple[tuple, tuple]:
    """(figures, damage) read in one pass, then by workers each reading a part of `part_bytes` of a file."""
    import collector.report.figures as report_module

    serial_damage, parallel_damage = [], []
    serial = report(log_dir, on_damage=lambda *where: serial_damage.append(where))
    monkeypatch.setattr(report_module, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(report_module, "PART_BYTES", part_bytes)
    parallel = report(log_dir, on_damage=lambda *where: parallel_damage.append(where))
    return (serial, serial_damage), (parallel, parallel_damage)


def _announcing_log(log_dir, records: int = 300, **writer_options) -> None:
    log = []
    for i in range(records):
        token = 1000 + i // 3
        log += [
            connection(float(i), token),
            add_addr(float(i), token, f"10.0.{i % 7}.1"),
            add_addr(float(i), token, f"2002:c000:2{i % 5}::1", announcer="server", echo=i % 2 == 0),
        ]
    write_log(log_dir, log, **writer_options)


def test_a_file_read_in_parts_gives_the_same_report(tmp_path, monkeypatch):
    """Big files are cut into parts read by several processes: the parts must join where one pass goes."""
    import collector.report.figures as report_module

    _announcing_log(tmp_path)
    (file,) = tmp_path.iterdir()
    size = file.stat().st_size
    parts = [
        report_module._read_part(report_module._Task(file, size, index, 7), since=None, until=None)
        for index in range(7)
    ]
    assert report_module._joined(parts), f"got parts {[(p.start, p.end) for p in parts]}; want them joined"
    serial, parallel = _serial_and_parts(tmp_path, monkeypatch, size // 7)
    assert parallel == serial and serial[0]["connections"] == 100, f"got {parallel}; want {serial}"


def test_damage_across_a_cut_is_reported_once(tmp_path, monkeypatch):
    _announcing_log(tmp_path)
    (file,) = tmp_path.iterdir()
    data = bytearray(file.read_bytes())
    for at in range(len(data) // 10, len(data), len(data) // 5):
        data[at : at + 700] = bytes(700)  # several records zeroed, across where parts are cut
    file.write_bytes(data)
    serial, parallel = _serial_and_parts(tmp_path, monkeypatch, len(data) // 9)
    assert parallel == serial and len(serial[1]) == 5, f"got {parallel}; want {serial}"


def test_a_frame_inside_a_record_is_not_read_by_a_part(tmp_path, monkeypatch):
    """A hostile record holding a whole frame in its bytes: a part may start at that inner frame, which
    a pass from the start never reads; then the file is read in one pass."""
    from collector.logs.framing import frame

    hidden = frame(msgpack.packb(add_addr(0.0, 1, "203.0.113.9"), use_bin_type=True))
    records = [add_addr(float(i), 7, "10.1.1.1") | {"hmac": hidden} for i in range(200)]
    write_log(tmp_path, [connection(0.0, 7), *records])
    (file,) = tmp_path.iterdir()
    serial, parallel = _serial_and_parts(tmp_path, monkeypatch, file.stat().st_size // 11)
    assert parallel == serial and serial[0]["distinct_addresses"] == 1, f"got {parallel}; want {serial}"


def test_a_second_header_in_a_file_names_the_host_of_the_records_after_it(tmp_path, monkeypatch):
    alpha, beta = tmp_path / "alpha", tmp_path / "beta"
    _announcing_log(alpha, host="alpha")
    _announcing_log(beta, host="beta")
    ((first,), (second,)) = alpha.iterdir(), beta.iterdir()
    first.write_bytes(first.read_bytes() + second.read_bytes())
    serial, parallel = _serial_and_parts(alpha, monkeypatch, first.stat().st_size // 8)
    assert parallel == serial and serial[0]["connections"] == 200, f"got {parallel}; want {serial}"
