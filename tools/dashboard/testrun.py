# SPDX-License-Identifier: MIT
"""A test run to scrape: the namespace testbed, `addaddr run --metrics` at its server, Debian's
prometheus scraping it on loopback, and traffic in waves of varying size."""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from collector.lab.testbed import Testbed
from tests.support.waiting import stop

ADDADDR = str(Path(sys.executable).with_name("addaddr"))
SCRAPE_SECONDS = 2
STARTUP_SECONDS = 60  # compiling the kernel program, starting prometheus
PROMETHEUS_CONFIG = """global:
  scrape_interval: {scrape}s
  evaluation_interval: {scrape}s
scrape_configs:
  - job_name: addaddr
    static_configs:
      - targets: ["{target}"]
"""


def free_port() -> int:
    """A port free now on 127.0.0.1, for prometheus, which cannot be asked for any free port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, check, seconds: float = STARTUP_SECONDS):
    deadline = time.monotonic() + seconds
    while not (result := check()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} after {seconds:.0f} s")
        time.sleep(0.5)
    return result


class TestRun:
    """Use as a context manager: everything it starts is stopped and removed on leaving, the testbed
    by its own context manager."""

    def __init__(self) -> None:
        self.prometheus = ""
        self._stack = ExitStack()

    def __enter__(self) -> TestRun:
        with ExitStack() as stack:  # unwound here should starting fail
            self.scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="addaddr-dashboard-")))
            self.bed = stack.enter_context(Testbed())
            self._start(stack)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stack.close()

    def _start(self, stack: ExitStack) -> None:
        status = self.scratch / "collector.stderr"
        interfaces = [arg for ifname in self.bed.server_interfaces for arg in ("--iface", ifname)]
        with status.open("w") as err:
            _started(
                stack,
                subprocess.Popen(
                    [
                        ADDADDR,
                        "run",
                        "--netns",
                        self.bed.server,
                        *interfaces,
                        "--log-dir",
                        str(self.scratch / "logs"),
                        "--metrics",
                        "127.0.0.1:0",
                    ],
                    stderr=err,
                ),
            )
        target = wait_for(
            "metrics address from the collector",
            lambda: re.search(r"metrics at http://(\S+)/metrics", status.read_text()),
        )
        port = free_port()
        config = self.scratch / "prometheus.yml"
        config.write_text(PROMETHEUS_CONFIG.format(scrape=SCRAPE_SECONDS, target=target.group(1)))
        _started(
            stack,
            subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.scratch / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        )
        self.prometheus = f"http://127.0.0.1:{port}"
        wait_for("ready prometheus", self._ready)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.prometheus}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def prometheus_version(self) -> str:
        with urllib.request.urlopen(f"{self.prometheus}/api/v1/status/buildinfo", timeout=5) as response:
            return json.load(response)["data"]["version"]

    def traffic(self, minutes: float, progress) -> tuple[float, float]:
        """Waves of 1 to 12 connections per client and family, with pauses, for `minutes`; returns
        (start, end) in epoch seconds, a few scrapes either side included."""
        rng = random.Random(16)
        start = time.time()
        time.sleep(3 * SCRAPE_SECONDS)
        end = start + minutes * 60
        while time.time() < end:
            traffic = self.bed.drive(rng.randint(1, 12))
            progress(f"{len(traffic.connections)} connections, {len(traffic.failures)} failed")
            time.sleep(rng.uniform(0, 6))
        time.sleep(3 * SCRAPE_SECONDS)
        return start, time.time()


def _started(stack: ExitStack, process: subprocess.Popen) -> None:
    """`process` stopped on leaving the stack (SIGTERM, the collector drains and detaches; SIGKILL after
    the tests' grace), before the testbed goes, as it was started after it."""
    stack.callback(stop, process)
