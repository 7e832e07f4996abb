# SPDX-License-Identifier: MIT
"""`addaddr run` as a background process on a testbed's server, and what it left: the announcements it
logged, what of ours is attached at the interface it watched."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from collector.lab.testbed import ClientPlan, Testbed
from collector.logs.reader import read_records
from tests.support.our_hook import ours_attached
from tests.support.paths import ADDADDR
from tests.support.waiting import wait_for_line

ONE_CLIENT = (ClientPlan(("10.1.2.3", "2001:db8::5")),)
# bcc compiles the program at every start: seconds, more on a loaded 2-CPU machine.
ATTACH_SECONDS = 120


def run_command(bed: Testbed, log_dir: Path, *options: str, addaddr: str = ADDADDR) -> list[str]:
    """The command line of `addaddr run` at the testbed server's first interface, logging to log_dir."""
    return [
        addaddr,
        "run",
        "--netns",
        bed.server,
        "--iface",
        bed.server_interfaces[0],
        "--log-dir",
        str(log_dir),
        *options,
    ]


class Collector:
    """`addaddr run` in the background; returns once it is attached, with the lines it printed."""

    def __init__(self, processes: list, bed: Testbed, log_dir: Path, *options: str):
        self.proc = subprocess.Popen(run_command(bed, log_dir, *options), stderr=subprocess.PIPE, text=True)
        processes.append(self.proc)
        self.started = wait_for_line(self.proc, self.proc.stderr, "collecting on", ATTACH_SECONDS, "'collecting on'")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        _, err = self.proc.communicate(timeout=30)
        self.stderr = err
        return self.proc.returncode


def announcements(log_dir: Path) -> int:
    """Announcements logged so far; a record being written is not damage yet."""
    return sum(r["kind"] == "add_addr" for r in read_records(log_dir, on_damage=lambda *_: None))


def ours_on(bed: Testbed) -> int:
    """Ours attached at the server's interface, clsact filter or tcx link (a run killed in tcx leaves nothing)."""
    return ours_attached(bed.server, bed.server_interfaces[0])
