# SPDX-License-Identifier: MIT
"""The drop to an unprivileged user (collector/live/privileges.py) done for real, in a child process that
loads, attaches and opens what `run` does first; and the systemd unit deploy/addaddr.service (its
bounding set checked without root in tests/unit/test_capabilities.py, its syntax in
tests/project/test_systemd_unit.py).

The child runs twice: as plain root (`sudo addaddr run --user`), and as the unit starts it: root
with only the unit's bounding set and no_new_privs (setpriv does what systemd would), which also
proves that set is enough. Network rule: the frames go from one end of a veth to the other, both in
a namespace made here and removed afterwards.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from collector.kernel.netns import socket_in
from collector.live.privileges import (
    CAP_NUMBERS,
    missing_capabilities,
    required_capabilities,
)
from collector.logs.directory import log_files
from collector.logs.reader import read_records
from collector.pipeline.decode import AddAddr
from tests.support.frames import ETH_P_IP, IPPROTO_TCP, ether, ipv4, tcp
from tests.support.mptcp_encoder import encode
from tests.support.systemd_unit import unit_capabilities, unit_value

USER = "nobody"
IFACE, PEER = "pv0", "pv1"
OPTION = encode(AddAddr(0, 7, IPv4Address("203.0.113.7"), None, False, None))
FRAME = ether(ETH_P_IP, ipv4("10.9.0.2", "10.9.0.1", IPPROTO_TCP, tcp(40000, 5201, options=OPTION)))
ZERO = "0000000000000000"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="dropping privilege needs root (and BPF, netns)")
# The `dropped` tests are `slow`: each of the two modes loads the kernel program in a child.

# Run in the child as `python -c CHILD NETNS LOG_DIR USER`: what `run` does up to the drop, the drop,
# then what it does after it; says "dropped" for a frame to be sent, then prints what it saw as JSON.
CHILD = r"""
import errno, json, os, socket, sys, threading
from pyroute2.netlink.exceptions import NetlinkError
from collector.kernel.clsact import attach
from collector.logs.writer import LogWriter
from collector.live.privileges import drop_to
from collector.kernel.program import CaptureProgram

netns, log_dir, user = sys.argv[1:]
now = [1_000_000.0]  # the log's clock: moved an hour on to make it rotate
writer = LogWriter(log_dir, {"source": "test"}, max_age=60, clock=lambda: now[0])
writer.write({"kind": "before", "time": now[0]})
options = []
program = CaptureProgram()
program.open_events(lambda events: options.extend(e.option.hex() for e in events), lambda lost: None, pages=8)
attachment = attach(program.fd, "pv0", netns)
stop = threading.Event()
waiter = threading.Thread(target=stop.wait, daemon=True)  # so that a failed drop ends the child
waiter.start()

drop_to(user, log_dir)

print("dropped", flush=True)
for _ in range(50):
    program.wait(100)
    program.drain()
    if options:
        break
counted = program.counters()["events"]
now[0] += 3600
writer.write({"kind": "after", "time": now[0]})
writer.close()

def refused(action):
    try:
        action()
    except PermissionError:
        return "EPERM"
    except NetlinkError as exc:
        return errno.errorcode[exc.code]
    return "allowed"

threads = {}
for tid in os.listdir("/proc/self/task"):
    with open(f"/proc/self/task/{tid}/status") as f:
        threads[tid] = {k: v.strip() for k, _, v in (line.partition(":") for line in f)}
result = {
    "resuid": os.getresuid(), "resgid": os.getresgid(), "groups": os.getgroups(),
    "dropper": str(threading.get_native_id()), "waiter": str(waiter.native_id), "threads": threads,
    "options": options, "counted": counted,
    "setuid(0)": refused(lambda: os.setuid(0)),
    "new packet socket": refused(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW)),
    "detach": refused(attachment.detach),
}
program.close()  # as `run` does at the end: the maps are still ours
stop.set()
waiter.join()
print(json.dumps(result))
"""


def as_the_unit_starts_it() -> list[str]:
    """setpriv doing what systemd does for the unit: root with only its bounding set, no_new_privs."""
    caps = ",".join(f"+{name.removeprefix('CAP_').lower()}" for name in sorted(unit_capabilities()))
    return ["setpriv", f"--bounding-set=-all,{caps}", "--inh-caps=-all", "--no-new-privs", "--"]


def tc_filters(netns: str) -> str:
    return subprocess.run(
        ["tc", "-n", netns, "filter", "show", "dev", IFACE, "ingress"], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture(scope="module", params=["root", "unit"])
def dropped(request):
    """The child's report, the log dir it wrote and the namespace it attached in, for one way of
    starting it."""
    netns = f"aapriv{secrets.token_hex(3)}"
    # Under a directory nobody can enter (pytest's tmp_path is root's, 0700).
    top = tempfile.mkdtemp(prefix="addaddr-privileges-")
    try:
        os.chmod(top, 0o755)
        log_dir = Path(top, "logs")
        subprocess.run(["ip", "netns", "add", netns], check=True)
        subprocess.run(["ip", "-n", netns, "link", "add", IFACE, "type", "veth", "peer", "name", PEER], check=True)
        for ifname in (IFACE, PEER):
            subprocess.run(["ip", "-n", netns, "link", "set", ifname, "up"], check=True)
        prefix = as_the_unit_starts_it() if request.param == "unit" else []
        # `timeout`: a child stuck before saying "dropped" must not hang the tests.
        with subprocess.Popen(
            ["timeout", "120", *prefix, sys.executable, "-c", CHILD, netns, str(log_dir), USER],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as child:
            if child.stdout.readline() == "dropped\n":
                # From here: the unit does not grant the child CAP_NET_RAW for a packet socket.
                with socket_in(netns, socket.AF_PACKET, socket.SOCK_RAW) as sender:
                    sender.bind((PEER, 0))
                    sender.send(FRAME)
            out, err = child.communicate()
        assert child.returncode == 0, f"child failed ({child.returncode}):\n{err}"
        yield {"mode": request.param, "report": json.loads(out), "log_dir": log_dir, "netns": netns}
    finally:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        shutil.rmtree(top)


def nobody() -> pwd.struct_passwd:
    return pwd.getpwnam(USER)


@pytest.mark.slow
@needs_root
def test_every_thread_is_the_user_with_no_capability(dropped):
    report, user = dropped["report"], nobody()
    assert report["resuid"] == [user.pw_uid] * 3, f"got uids {report['resuid']}"
    assert report["resgid"] == [user.pw_gid] * 3, f"got gids {report['resgid']}"
    assert sorted(report["groups"]) == sorted(os.getgrouplist(USER, user.pw_gid)), f"got groups {report['groups']}"
    threads = report["threads"]
    assert set(threads) == {report["dropper"], report["waiter"]}, f"got threads {sorted(threads)}"
    want = {
        "Uid": f"{user.pw_uid}\t" * 3 + str(user.pw_uid),
        "Gid": f"{user.pw_gid}\t" * 3 + str(user.pw_gid),
        "CapEff": ZERO,
        "CapPrm": ZERO,
        "CapInh": ZERO,
        "CapAmb": ZERO,
        "NoNewPrivs": "1",
    }
    for tid, status in threads.items():
        got = {field: status[field] for field in want}
        assert got == want, f"thread {tid} ({'dropper' if tid == report['dropper'] else 'started before'}): got {got}"


@pytest.mark.slow
@needs_root
def test_bounding_set_of_the_dropping_thread(dropped):
    # Emptied by plain root; under the unit, without CAP_SETPCAP, what systemd left stays (inert
    # under no_new_privs).
    got = int(dropped["report"]["threads"][dropped["report"]["dropper"]]["CapBnd"], 16)
    want = 0 if dropped["mode"] == "root" else sum(1 << CAP_NUMBERS[name] for name in unit_capabilities())
    assert got == want, f"got CapBnd {got:#x}; want {want:#x}"


@pytest.mark.slow
@needs_root
def test_perf_buffer_and_maps_work_after_the_drop(dropped):
    report = dropped["report"]
    assert report["options"] == [OPTION.hex()], f"got options {report['options']}; want the frame's ADD_ADDR"
    assert report["counted"] >= 1, f"got events counter {report['counted']} read after the drop"


@pytest.mark.slow
@needs_root
def test_log_rotates_after_the_drop_into_files_of_the_user(dropped):
    log_dir, user = dropped["log_dir"], nobody()
    files = log_files(log_dir)
    assert len(files) == 2, f"got log files {[f.name for f in files]}; want the first and the rotated one"
    for path, mode in [(log_dir, 0o750), *((f, 0o640) for f in files)]:
        st = path.stat()
        got = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
        assert got == (user.pw_uid, user.pw_gid, mode), f"{path}: got owner, group, mode {got}"
    kinds = [r["kind"] for r in read_records(files[-1])]
    assert kinds == ["header", "after"], f"got records {kinds} in the file opened after the drop"


@pytest.mark.slow
@needs_root
def test_privileged_operations_fail_after_the_drop(dropped):
    report = dropped["report"]
    got = {action: report[action] for action in ("setuid(0)", "new packet socket", "detach")}
    assert got == {"setuid(0)": "EPERM", "new packet socket": "EPERM", "detach": "EPERM"}, f"got {got}"


@pytest.mark.slow
@needs_root
def test_exec_stop_post_removes_the_filter_the_dropped_collector_left(dropped):
    netns = dropped["netns"]
    assert "handle 0xadd addaddr" in tc_filters(netns), "the dropped collector could not remove its filter"
    command = unit_value("ExecStopPost").removeprefix("-").replace("${IFACE}", IFACE).split()
    subprocess.run(["ip", "netns", "exec", netns, *command], check=True)
    assert "0xadd" not in tc_filters(netns), f"filter still there:\n{tc_filters(netns)}"


MISSING = """
import json
from collector.live.privileges import missing_capabilities
print(json.dumps([missing_capabilities(), missing_capabilities(netns=True, drop=True)]))
"""


@needs_root
def test_missing_capabilities():
    assert missing_capabilities(netns=True, drop=True) == [], "root has every capability"
    only_bpf = ["setpriv", "--bounding-set=-all,+bpf", "--inh-caps=-all", "--"]
    out = subprocess.run([*only_bpf, sys.executable, "-c", MISSING], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    # The child has this process's RLIMIT_MEMLOCK, so the same need for CAP_IPC_LOCK.
    want = [[name for name in required_capabilities(flag, flag) if name != "CAP_BPF"] for flag in (False, True)]
    assert got == want, f"with CAP_BPF only: got {got}; want {want}"
