# SPDX-License-Identifier: MIT
"""`addaddr replay` then `addaddr report`, end to end through the real command and the kernel program.

Four witnesses: real kernel MPTCP captured by tcpdump, replayed, must report what the live collector
reported and what tshark decodes from the same file (on a testbed: tests/live/test_replay_matches_live.py);
the public captures must log every ADD_ADDR of their ground-truth tables and no other; a crafted capture
of every announcement case must give the figures worked out by hand; bad captures fail with one line
naming the file, keep what was read and let the next capture through.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from ipaddress import ip_address
from pathlib import Path

import pytest

from collector.addresses.classify import classify
from collector.report.render import iso_time
from tests.support.capture_writer import LINKTYPE_IEEE802_11, PcapngWriter, PcapWriter
from tests.support.commands import addaddr, assert_succeeded, replay, replay_stats, report, tail
from tests.support.paths import ADDADDR, PUBLIC_CAPTURES
from tests.support.replay_fixtures import (
    ADDRESS_A,
    ADDRESS_B,
    STEP_NS,
    T0_NS,
    Capture,
    add_addr_hmac,
    oversized,
    scenario,
)
from tests.support.tshark import assert_report_matches_tshark, tshark_figures
from tests.support.waiting import wait_for_line

# The module's fixtures replay every capture (a bcc compile each) inside their first test's time limit.
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="replay loads the kernel program: needs root"),
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

NO_PUBLIC_CAPTURES = f"no public captures: {PUBLIC_CAPTURES} (the project's shared/) is absent"
# Replays at once: each spends ~2 s of CPU compiling the kernel program.
PARALLEL = max(2, os.cpu_count() or 2)


# --- the command line (tests/support/commands.py has the rest) ---------------------------------------


def replay_all(jobs: dict) -> dict:
    """{key: (captures, log_dir, options...)} -> {key: CompletedProcess}, several replays at a time."""
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = {key: pool.submit(replay, *job) for key, job in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


def add_addrs(records: list[dict]) -> list[dict]:
    return [r for r in records if r["kind"] == "add_addr"]


# --- the replays that need no testbed, run together: each spends ~2 s compiling the kernel program ---


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """{job: (CompletedProcess, log dir)} of every replay below, plus what they were made from."""
    tmp = tmp_path_factory.mktemp("offline")
    scenarios = {"crafted": scenario(), "good": scenario(port_base=50000), "oversized": oversized()}
    pcaps = {}
    for name, made in scenarios.items():
        pcaps[name] = tmp / f"{name}.pcap"
        pcaps[name].write_bytes(made.capture.pcap()[0])
    jobs = {name: ([pcaps[name]], tmp / name) for name in ("crafted", "oversized")}
    jobs["named host"] = ([pcaps["crafted"]], tmp / "named-host", "--host", NAMED_HOST)
    bad = bad_captures(tmp)
    for i, (name, (path, _, _)) in enumerate(bad.items()):
        jobs[f"bad {name}"] = ([path, pcaps["good"]], tmp / f"bad-{i}")
    if PUBLIC_CAPTURES.is_dir():
        for table in sorted(PUBLIC_CAPTURES.glob("*.pcap.addaddr.csv")):
            jobs[f"public {table.name}"] = (
                [table.with_name(table.name.removesuffix(".addaddr.csv"))],
                tmp / table.name,
            )
    results = replay_all(jobs)
    return {
        **{name: (results[name], jobs[name][1]) for name in jobs},
        "scenarios": scenarios,
        "pcaps": pcaps,
        "bad": bad,
    }


# --- 2. public captures: every row of the ground-truth tables, and nothing else -----------------------


def public_tables() -> list:
    if not PUBLIC_CAPTURES.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_PUBLIC_CAPTURES))]
    tables = sorted(PUBLIC_CAPTURES.glob("*.pcap.addaddr.csv"))
    if not tables:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no *.pcap.addaddr.csv in {PUBLIC_CAPTURES}"))]
    return tables


def table_row(row: dict) -> tuple:
    return (
        row["src"],
        int(row["sport"]),
        row["dst"],
        int(row["dport"]),
        int(row["version"].removeprefix("v")),
        row["echo"] == "1",
        int(row["addr_id"]),
        ip_address(row["address"]),
        int(row["port"]) if row["port"] else None,
        bytes.fromhex(row["hmac"]) if row["hmac"] else None,
    )


def record_row(record: dict) -> tuple:
    return (
        record["src"],
        record["sport"],
        record["dst"],
        record["dport"],
        record["version"],
        record["echo"],
        record["address_id"],
        ip_address(record["address"]),
        record["port"],
        bytes.fromhex(record["hmac"]) if record["hmac"] is not None else None,
    )


@pytest.mark.parametrize("table", public_tables(), ids=lambda table: getattr(table, "name", None))
def test_public_capture_logs_every_add_addr_of_its_table(table, offline):
    result, log_dir = offline[f"public {table.name}"]
    assert_succeeded(result)
    with open(table, newline="") as file:
        want = Counter(table_row(row) for row in csv.DictReader(file))
    got = Counter(record_row(r) for r in add_addrs(tail(log_dir)))
    missing, extra = want - got, got - want
    assert not missing, f"got no record for {sorted(missing.elements(), key=str)}; want every row of {table.name}"
    assert not extra, f"got records {sorted(extra.elements(), key=str)} beyond the rows; want none"
    assert sum(got.values()) == sum(want.values()), f"got {sum(got.values())} add_addr; want {sum(want.values())}"


# --- 3. a crafted capture of every announcement case --------------------------------------------------


@pytest.fixture(scope="module")
def crafted(offline):
    result, log_dir = offline["crafted"]
    return {
        "scenario": offline["scenarios"]["crafted"],
        "pcap": offline["pcaps"]["crafted"],
        "logs": log_dir,
        "result": result,
    }


def sent_row(sent, token: int | None) -> tuple:
    return (
        sent.src,
        sent.sport,
        sent.dst,
        sent.dport,
        f"{token:08x}",
        sent.announcer,
        sent.subflow,
        sent.echo,
        sent.address_id,
        sent.address,
        None if sent.hmac is None else sent.hmac.hex(),
    )


def logged_row(record: dict) -> tuple:
    return (
        record["src"],
        record["sport"],
        record["dst"],
        record["dport"],
        record["connection"],
        record["announcer"],
        record["subflow"],
        record["echo"],
        record["address_id"],
        record["address"],
        record["hmac"],
    )


def test_crafted_capture_reports_the_figures_worked_out_by_hand(crafted):
    assert_succeeded(crafted["result"])
    got = report(crafted["logs"])
    # Connection 1's client: A, A retransmitted, A on the join; connection 2's: A. 4 announcements,
    # 2 (connection, address) pairs, 1 distinct address. The server: B once. Echoes count nowhere.
    want = {
        "connections": 2,
        "attempts": 0,
        "connections_announcing": 2,
        "announcements": 4,
        "distinct_addresses": 1,
        "with_port": 0,
        "versions": {"v0": 0, "v1": 2},
        "unattributed": 0,
    }
    for key, value in want.items():
        assert got[key] == value, f"got {key} {got[key]}; want {value}"
    a_class, b_class = classify(ADDRESS_A).address_class, classify(ADDRESS_B).address_class
    assert got["ipv4"]["addresses"] == 2, f"got ipv4.addresses {got['ipv4']['addresses']}; want 2"
    assert got["ipv4"]["classes"] == {a_class: 2}, f"got ipv4.classes {got['ipv4']['classes']}; want {{{a_class}: 2}}"
    assert got["ipv6"]["addresses"] == 0, f"got ipv6.addresses {got['ipv6']['addresses']}; want 0"
    server = got["server_announced"]
    assert server["announcements"] == 1, f"got server announcements {server['announcements']}; want 1 (B)"
    assert (server["ipv4"]["addresses"], server["ipv4"]["classes"]) == (1, {b_class: 1}), (
        f"got server ipv4 {server['ipv4']}; want B once, class {b_class}"
    )


def test_crafted_capture_logs_each_add_addr_with_its_connection(crafted):
    made = crafted["scenario"]
    token1, token2 = made.tokens
    sent = made.capture.sent()
    # The two first connection's options before c2's handshake belong to it; c2's one to c2.
    c2_start = made.capture.index("c2 SYN")
    want = [sent_row(s, token1) for s in made.capture.sent(c2_start)]
    want += [sent_row(s, token2) for s in sent[len(want) :]]
    records = tail(crafted["logs"])
    got = [logged_row(r) for r in add_addrs(records)]
    assert got == want, f"got add_addr records {got}; want {want}"
    announcement = next(r for r in add_addrs(records) if not r["echo"])
    want_hmac = add_addr_hmac(0x1111_0000_0000_0000 + 40000, 0x2222_0000_0000_0000 + 40000, 1, ADDRESS_A, None)
    assert announcement["hmac"] == want_hmac.hex(), f"got hmac {announcement['hmac']}; want {want_hmac.hex()}"
    connections = [r["connection"] for r in records if r["kind"] == "connection"]
    assert connections == [f"{token1:08x}", f"{token2:08x}"], (
        f"got connection records {connections}; want {token1:08x}, {token2:08x}"
    )
    joins = [(r["connection"], r["token"]) for r in records if r["kind"] == "mp_join"]
    assert joins == [(f"{token1:08x}", f"{token1:08x}")], f"got joins {joins}; want one, of connection 1"


def test_crafted_capture_is_what_tshark_decodes(crafted):
    """The fixture is a capture tshark reads as meant (the join tied to its connection by token), and
    our report agrees with tshark's count of it."""
    assert_report_matches_tshark(report(crafted["logs"]), tshark_figures(crafted["pcap"]))


def test_crafted_capture_records_carry_packet_times(crafted):
    made = crafted["scenario"].capture
    records = add_addrs(tail(crafted["logs"]))
    indices = [i for i, p in enumerate(made.packets) if p.add_addr is not None]
    got = [r["time"] for r in records]
    want = [iso_time(made.time_of(i)) for i in indices]
    assert got == want, f"got times {got}; want the packets' {want}"


def test_frame_longer_than_a_test_run_takes_is_replayed(offline):
    """A super-segment over the ~3.7 KB BPF_PROG_TEST_RUN accepts runs cut to its headers, not refused:
    here it is the v1 first data that alone completes its connection."""
    result, log_dir = offline["oversized"]
    token = f"{offline['scenarios']['oversized'].tokens[0]:08x}"
    got = report(log_dir)
    figures = (got["connections"], got["connections_announcing"], got["announcements"], got["unattributed"])
    assert figures == (1, 1, 1, 0), (
        f"got connections, announcing, announcements, unattributed {figures}; want (1, 1, 1, 0)"
    )
    assert_succeeded(result)
    records = tail(log_dir)
    logged = [(r["kind"], r["connection"]) for r in records if r["kind"] in ("connection", "add_addr")]
    assert logged == [("connection", token), ("add_addr", token)], f"got {logged}; want its connection, then A"


def test_report_of_a_replay_spans_the_capture(crafted):
    got = report(crafted["logs"])
    made = crafted["scenario"].capture
    first = iso_time(made.time_of(made.index("c1 third ACK")))  # the first record: connection 1
    last = iso_time(made.time_of(len(made.packets) - 1))  # connection 1 ends (shutdown) at the last packet
    assert (got["first_seen"], got["last_seen"]) == (first, last), (
        f"got first/last seen {got['first_seen']}, {got['last_seen']}; want {first}, {last}"
    )


NAMED_HOST = "edge-7.fleet"


def test_host_option_names_the_logs_host(offline):
    result, log_dir = offline["named host"]
    assert_succeeded(result)
    headers = [r for r in tail(log_dir) if r["kind"] == "header"]
    assert headers and all(h["host"] == NAMED_HOST for h in headers), (
        f"got header hosts {[h['host'] for h in headers]}; want {NAMED_HOST!r} in each"
    )


def test_host_without_a_name_is_a_usage_error(tmp_path):
    result = addaddr("replay", "any.pcap", "--log-dir", str(tmp_path / "logs"), "--host", " ")
    assert result.returncode == 2, f"got exit {result.returncode}; want 2"
    assert "--host" in result.stderr and "Traceback" not in result.stderr, f"got {result.stderr!r}"
    assert not (tmp_path / "logs").exists(), "want nothing written"


# --- 4. bad captures: one line naming the file, exit 1, what was read is kept, the next one replayed ---


def pcapng_of(capture: Capture) -> tuple[bytes, list[int]]:
    writer = PcapngWriter()
    writer.section()
    writer.interface(tsresol=9)
    for i, packet in enumerate(capture.packets):
        writer.enhanced(0, T0_NS + i * STEP_NS, packet.frame)
    return writer.getvalue(), writer.packet_offsets


CUT_AT = "c1 join SYN"  # the truncated captures end inside this packet's record


def bad_captures(tmp: Path) -> dict:
    """name -> (path, packets read before the damage, what its error says)."""
    made = scenario().capture
    cut = made.index(CUT_AT)
    bad = {}
    for name, (data, offsets) in (("truncated pcap", made.pcap()), ("truncated pcapng", pcapng_of(made))):
        path = tmp / f"{name.replace(' ', '.')}"
        # Past the record's header, halfway into the frame.
        path.write_bytes(data[: offsets[cut] + 28 + len(made.packets[cut].frame) // 2])
        bad[name] = (path, cut, f"truncated after {cut} packets")
    writer = PcapWriter(LINKTYPE_IEEE802_11)
    writer.packet(T0_NS, bytes.fromhex("08420000ffffffffffff") + bytes(30))  # an 802.11 data frame
    path = tmp / "wifi.pcap"
    path.write_bytes(writer.getvalue())
    bad["link type 105"] = (path, 0, "link type 105")
    return bad


@pytest.fixture(scope="module")
def bad_replays(offline):
    """Each bad capture replayed with a good one after it (other connections than the bad ones')."""
    cases = {name: (*offline[f"bad {name}"], *offline["bad"][name]) for name in offline["bad"]}
    return cases, offline["scenarios"]["good"].capture, offline["pcaps"]["good"]


@pytest.mark.parametrize("name", ["truncated pcap", "truncated pcapng", "link type 105"])
def test_bad_capture_fails_with_one_line_and_the_next_is_replayed(name, bad_replays):
    cases, good, good_path = bad_replays
    result, log_dir, path, read, error = cases[name]
    assert result.returncode == 1, f"got exit {result.returncode} ({result.stderr.strip()}); want 1"
    assert "Traceback" not in result.stderr, f"got a traceback: {result.stderr}"
    errors = [line for line in result.stderr.splitlines() if line.startswith("addaddr: error:")]
    assert len(errors) == 1, f"got error lines {errors}; want one"
    assert str(path) in errors[0] and error in errors[0], f"got {errors[0]!r}; want it to name {path} and say {error!r}"
    assert str(good_path) not in errors[0], f"got {errors[0]!r}; want the good capture left out of it"
    records = tail(log_dir)
    # What was read of the bad capture, then the whole good one.
    made = scenario().capture
    want = Counter((s.src, s.sport, s.dst, s.dport, s.address, s.echo) for s in made.sent(read) + good.sent())
    got = Counter((r["src"], r["sport"], r["dst"], r["dport"], r["address"], r["echo"]) for r in add_addrs(records))
    assert got == want, f"got add_addr records {sorted(got.elements())}; want {sorted(want.elements())}"
    packets = replay_stats(records)["replay"]["packets"]
    want_packets = (read if name.startswith("truncated") else 0) + len(good.packets)
    assert packets == want_packets, f"got {packets} packets replayed; want {want_packets}"


@pytest.mark.parametrize("name", ["truncated pcap", "truncated pcapng"])
def test_truncated_capture_keeps_the_records_before_the_cut(name, bad_replays):
    cases, _, _ = bad_replays
    _, log_dir, path, read, _ = cases[name]
    records = [r for r in tail(log_dir) if r["kind"] != "header" and r["kind"] != "stats"]
    made = scenario()
    token1 = f"{made.tokens[0]:08x}"
    of_bad = [r for r in records if r.get("connection") == token1]
    kinds = [r["kind"] for r in of_bad]
    # Its handshake and both announcements of A came before the cut; the join and the rest did not.
    assert kinds == ["connection", "add_addr", "add_addr", "connection_end"], (
        f"got records of the cut connection {kinds}; want connection, 2 add_addr, connection_end"
    )
    want = [sent_row(s, made.tokens[0]) for s in made.capture.sent(read)]
    got = [logged_row(r) for r in of_bad if r["kind"] == "add_addr"]
    assert got == want, f"got {got}; want {want}"
    # Still open when the replay ended: it ends at the last packet replayed, the good capture's last.
    end = (of_bad[-1]["reason"], of_bad[-1]["time"])
    want_end = ("shutdown", iso_time(made.capture.time_of(len(made.capture.packets) - 1)))
    assert end == want_end, f"got its end {end}; want {want_end}"


# --- 5. checked before anything is made; streams; times no reader could take ---------------------------


@pytest.mark.parametrize(
    "content, says",
    [(b"", "is empty"), (b"GIF89a" + bytes(58), "is not a pcap or pcapng file"), (None, "No such file or directory")],
    ids=["empty", "wrong magic", "missing"],
)
def test_a_capture_that_is_not_one_refuses_the_replay_before_anything_is_made(content, says, offline, tmp_path):
    bad, logs = tmp_path / "bad.pcap", tmp_path / "logs"
    if content is not None:
        bad.write_bytes(content)
    result = addaddr("replay", str(offline["pcaps"]["good"]), str(bad), "--log-dir", str(logs))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, f"got exit {result.returncode} ({result.stderr.strip()}); want 1"
    assert len(lines) == 1 and str(bad) in lines[0] and says in lines[0], f"got {lines}; want one line saying {says!r}"
    assert not logs.exists(), "got a log dir made before the captures were checked"


def test_tcpdump_writing_to_a_pipe_replays_as_its_file(offline, tmp_path):
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed (scripts/setup --test installs it)")
    tcpdump = subprocess.Popen(
        ["tcpdump", "-r", str(offline["pcaps"]["crafted"]), "-w", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    result = subprocess.run(
        [ADDADDR, "replay", "-", "--log-dir", str(tmp_path)],
        stdin=tcpdump.stdout,
        capture_output=True,
        text=True,
        timeout=120,
    )
    tcpdump.stdout.close()
    assert tcpdump.wait(timeout=30) == 0
    assert_succeeded(result)
    rows = sorted(logged_row(r) for r in add_addrs(tail(tmp_path)))
    want = sorted(logged_row(r) for r in add_addrs(tail(offline["crafted"][1])))
    assert rows == want and rows, f"got {len(rows)} add_addr records from the pipe; want the file's {len(want)}"


def test_packets_timed_outside_1970_to_2200_are_refused_and_counted(offline, tmp_path):
    made = scenario().capture
    writer = PcapngWriter()
    writer.section()
    writer.interface(tsresol=9)
    writer.interface(tsresol=9, tsoffset=2**62)  # seconds added to every time: year 10**11
    writer.interface(tsresol=0)  # whole seconds, and a time of 2**63 of them
    for i, packet in enumerate(made.packets):
        writer.enhanced(0, T0_NS + i * STEP_NS, packet.frame)
    for packet in made.packets[:3]:
        writer.enhanced(1, T0_NS, packet.frame)
        writer.enhanced(2, 2**63, packet.frame)
    capture = tmp_path / "hostile-times.pcapng"
    capture.write_bytes(writer.getvalue())
    result = addaddr("replay", str(capture), "--log-dir", str(tmp_path / "logs"))
    assert result.returncode == 1, f"got exit {result.returncode} ({result.stderr.strip()}); want 1"
    assert "6 packets timed before 1970 or after 2200 were not replayed" in result.stderr, result.stderr
    records = tail(tmp_path / "logs")
    assert replay_stats(records)["replay"] == {"packets": len(made.packets), "refused": 0, "bad_time": 6}
    rows = sorted(logged_row(r) for r in add_addrs(records))
    assert rows == sorted(logged_row(r) for r in add_addrs(tail(offline["crafted"][1])))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_replay_stopped_midway_closes_its_log_and_says_so(signum, tmp_path, processes):
    """Stopped while it waits for more of a capture on stdin: one line, status 130, the log readable."""
    proc = subprocess.Popen(
        [ADDADDR, "replay", "-", "--log-dir", str(tmp_path / "logs")],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    processes.append(proc)
    head = PcapWriter()
    head.packet(T0_NS, bytes(14) + bytes([0x45]) + bytes(59))
    proc.stdin.buffer.write(head.getvalue())
    proc.stdin.flush()
    wait_for_line(proc, proc.stderr, "kernel program relies on", 120, "the replay to start")
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted: the logs in" in stderr, f"got exit {proc.returncode}: {stderr}"
    assert "Traceback" not in stderr and "Aborted" not in stderr, stderr
    assert tail(tmp_path / "logs")[0]["kind"] == "header", "got no readable log after the interruption"
