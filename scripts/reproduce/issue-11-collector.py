#!/usr/bin/env python3
"""Issue 11, the collector's problems listed under "Why", each tried again: one PASS or FAIL line each
(PASS: the problem is gone). As root, after scripts/setup --test:

    .venv/bin/python scripts/reproduce/issue-11-collector.py

Traffic stays in namespaces made here (collector.testbed), all removed at the end. The log ones are in
scripts/reproduce/issue-11-logs.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from capture_writer import PcapngWriter, PcapWriter  # noqa: E402
from replay_fixtures import STEP_NS, T0_NS, scenario  # noqa: E402

from collector.logfile import read_records  # noqa: E402
from collector.testbed import ClientPlan, Testbed  # noqa: E402

ADDADDR = str(Path(sys.executable).with_name("addaddr"))
ONE_CLIENT = (ClientPlan(("10.1.2.3", "2001:db8::5")),)
DEADLINE = 10


def collector(bed: Testbed, log_dir: Path, *options: str) -> subprocess.Popen:
    proc = subprocess.Popen([ADDADDR, "run", "--netns", bed.server, "--iface", bed.server_interfaces[0],
                             "--log-dir", str(log_dir), *options], stderr=subprocess.PIPE, text=True)
    while "collecting on" not in (line := proc.stderr.readline()):
        if not line:
            raise RuntimeError(f"addaddr run exited {proc.wait()} before collecting")
    return proc


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


def announcements(log_dir: Path) -> int:
    return sum(r["kind"] == "add_addr" and not r["echo"] for r in read_records(log_dir))


def second_run_blinds_the_first(tmp: Path) -> tuple[bool, str]:
    with Testbed(ONE_CLIENT) as bed:
        first = collector(bed, tmp / "first")
        second = subprocess.run([ADDADDR, "run", "--netns", bed.server, "--iface", bed.server_interfaces[0],
                                 "--log-dir", str(tmp / "second")], capture_output=True, text=True, timeout=60)
        traffic = bed.drive(3)
        time.sleep(0.5)
        stop(first)
    sent, seen = sum(c.announced for c in traffic.connections), announcements(tmp / "first")
    refused = second.returncode == 1 and f"pid {first.pid}" in second.stderr
    return refused and sent == seen > 0, f"second run exit {second.returncode}; first logged {seen} of {sent}"


def namespace_deleted_skips_final_records(tmp: Path) -> tuple[bool, str]:
    with Testbed(ONE_CLIENT) as bed:
        proc = collector(bed, tmp)
        bed.drive(1)
        subprocess.run(["ip", "netns", "del", bed.server], check=True)
        status = proc.wait(timeout=DEADLINE)
    last = list(read_records(tmp))[-1]["kind"]
    return status == 1 and last == "stats", f"run ended by itself with exit {status}; last record {last}"


def interface_deleted_goes_unnoticed(tmp: Path) -> tuple[bool, str]:
    with Testbed(ONE_CLIENT) as bed:
        away = f"{bed.name}-away"
        subprocess.run(["ip", "netns", "add", away], check=True)
        try:
            proc = collector(bed, tmp)
            link, srv = bed.links[0], ["ip", "-n", bed.server]
            subprocess.run([*srv, "link", "set", link.server_if, "netns", away], check=True)
            time.sleep(2)
            subprocess.run(["ip", "-n", away, "link", "set", link.server_if, "netns", bed.server], check=True)
            for command in (["link", "set", link.server_if, "up"],
                            ["addr", "add", f"{link.server4}/24", "dev", link.server_if],
                            ["addr", "add", f"{link.server6}/64", "dev", link.server_if, "nodad"],
                            ["route", "add", link.join4.rsplit(".", 1)[0] + ".0/24", "dev", link.server_if]):
                subprocess.run([*srv, *command], check=True)
            time.sleep(2)
            traffic = bed.drive(1)
            time.sleep(0.5)
            _, err = stop(proc)
        finally:
            subprocess.run(["ip", "netns", "del", away], capture_output=True)
    states = [r["state"] for r in read_records(tmp) if r["kind"] == "interface"]
    sent, seen = sum(c.announced for c in traffic.connections), announcements(tmp)
    said = "interface gone" in err and "interface back" in err
    return states == ["gone", "back"] and said and sent == seen > 0, \
        f"interface records {states}; after its return logged {seen} of {sent}"


def perf_pages_unbounded(tmp: Path) -> tuple[bool, str]:
    result = subprocess.run([ADDADDR, "run", "--iface", "lo", "--log-dir", str(tmp / "logs"),
                             "--perf-pages", "1073741824"], capture_output=True, text=True, timeout=60)
    return result.returncode == 2 and not (tmp / "logs").exists(), f"exit {result.returncode}"


def event_errors_not_lost(tmp: Path) -> tuple[bool, str]:
    from test_lost_events import flood

    kernel, session, stats = flood(tmp)
    logged = sum(r["count"] for r in read_records(tmp) if r["kind"] == "lost")
    errors = kernel["event_errors"]
    return errors > 0 and stats["lost"] == logged == errors, \
        f"event_errors {errors}, perf lost {session.perf_lost}, stats.lost {stats['lost']}, lost records {logged}"


def zero_device_read_whole(tmp: Path) -> tuple[bool, str]:
    started = time.monotonic()
    result = subprocess.run([ADDADDR, "replay", "/dev/zero", "--log-dir", str(tmp / "logs")],
                            capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - started
    refused = result.returncode == 1 and "is not a pcap" in result.stderr
    return refused and not (tmp / "logs").exists(), f"exit {result.returncode} in {seconds:.1f} s"


STREAM_READER = """
import re
from collector.capture import read_capture
count = sum(1 for _ in read_capture("-"))
# VmHWM, not ru_maxrss: that one outlives execve, and would be the parent's peak.
print(count, int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) >> 10)
"""


def pipe_read_whole(tmp: Path) -> tuple[bool, str]:
    header = PcapWriter()
    one = PcapWriter()
    one.packet(T0_NS, bytes(1 << 20))
    reader = subprocess.Popen([sys.executable, "-c", STREAM_READER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, cwd=ROOT)
    reader.stdin.write(header.getvalue())
    for _ in range(256):
        reader.stdin.write(one.getvalue()[24:])
    reader.stdin.close()
    count, rss = map(int, reader.stdout.read().split())
    reader.wait(timeout=60)
    return count == 256 and rss < 64, f"256 MiB through a pipe: {count} packets, peak RSS {rss} MiB"


def crafted_pcap(tmp: Path) -> Path:
    path = tmp / "crafted.pcap"
    path.write_bytes(scenario().capture.pcap()[0])
    return path


def tcpdump_pipe_cannot_work(tmp: Path) -> tuple[bool, str]:
    pcap = crafted_pcap(tmp)
    tcpdump = subprocess.Popen(["tcpdump", "-r", str(pcap), "-w", "-"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
    result = subprocess.run([ADDADDR, "replay", "-", "--log-dir", str(tmp / "logs")], stdin=tcpdump.stdout,
                            capture_output=True, text=True, timeout=120)
    tcpdump.stdout.close()
    tcpdump.wait(timeout=30)
    seen = announcements(tmp / "logs") if (tmp / "logs").exists() else 0
    return result.returncode == 0 and seen > 0, f"exit {result.returncode}, {seen} announcements logged"


def hostile_times_written(tmp: Path) -> tuple[bool, str]:
    made = scenario().capture
    writer = PcapngWriter()
    writer.section()
    writer.interface(tsresol=9)
    writer.interface(tsresol=9, tsoffset=2**62)
    writer.interface(tsresol=0)
    for i, packet in enumerate(made.packets):
        writer.enhanced(1 + i % 2, T0_NS + i * STEP_NS if i % 2 == 0 else 2**63, packet.frame)
    capture = tmp / "hostile.pcapng"
    capture.write_bytes(writer.getvalue())
    result = subprocess.run([ADDADDR, "replay", str(capture), "--log-dir", str(tmp / "logs")],
                            capture_output=True, text=True, timeout=120)
    records = list(read_records(tmp / "logs"))
    late = sum(r["time"] > 7258118400 for r in records if r["kind"] not in ("header", "stats"))
    bad = records[-1]["replay"]["bad_time"]
    return late == 0 and bad == len(made.packets) and result.returncode == 1, \
        f"{late} records after 2200 written; {bad} packets refused as bad_time"


def files_made_before_checks(tmp: Path) -> tuple[bool, str]:
    bad_capture = tmp / "capture.gif"
    bad_capture.write_bytes(b"GIF89a" + bytes(58))
    tries = {
        "no interface": [ADDADDR, "run", "--iface", "nosuch0"],
        "no namespace": [ADDADDR, "run", "--iface", "lo", "--netns", "addaddr-no-such-ns"],
        "no privilege": ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", ADDADDR, "run",
                         "--iface", "lo"],
        "not a capture": [ADDADDR, "replay", str(bad_capture)],
    }
    made = []
    for name, command in tries.items():
        logs = tmp / name.replace(" ", "-")
        tmp.chmod(0o777)  # so that nobody could make its log dir, were it not refused first
        result = subprocess.run([*command, "--log-dir", str(logs)], capture_output=True, text=True, timeout=60)
        if result.returncode == 0 or logs.exists():
            made.append(name)
    return not made, f"log dir made despite: {', '.join(made) or 'none of ' + ', '.join(tries)}"


PROBLEMS = [
    ("a second run blinds the first", second_run_blinds_the_first),
    ("a deleted namespace skips the drain and the final records", namespace_deleted_skips_final_records),
    ("a deleted interface goes unnoticed and is never reattached", interface_deleted_goes_unnoticed),
    ("--perf-pages has no bound", perf_pages_unbounded),
    ("event_errors are not reported as lost", event_errors_not_lost),
    ("/dev/zero as CAPTURE is read whole into memory", zero_device_read_whole),
    ("a pipe as CAPTURE is read whole before the first packet", pipe_read_whole),
    ("tcpdump -w - | addaddr replay cannot work", tcpdump_pipe_cannot_work),
    ("timestamps far out of range are written to the logs", hostile_times_written),
    ("run/replay make the log dir before checking", files_made_before_checks),
]


def main() -> int:
    failed = 0
    for title, reproduce in PROBLEMS:
        with tempfile.TemporaryDirectory(prefix="addaddr-issue11-") as tmp:
            try:
                ok, detail = reproduce(Path(tmp))
            except Exception as exc:  # a reproduction that breaks is a FAIL with its reason
                ok, detail = False, f"{type(exc).__name__}: {exc}"
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {title}: {detail}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
