# SPDX-License-Identifier: MIT
"""tcpdump as a witness in a test namespace: started before the traffic, stopped after, nothing dropped."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support.waiting import wait_for_line

# Without immediate mode, a tcpdump stopped by SIGTERM had written none of the packets its filter took
# (libpcap's TPACKET_V3 blocks). In immediate mode each ring slot takes the snap length, so a small one
# (testbed segments are a few hundred bytes; options sit in the first 120) and a large buffer keep
# the ring from overflowing: with the defaults it dropped a third of the packets.
FLAGS = ("-nn", "-U", "--immediate-mode", "-s", "2048", "-B", "8192")


class Tcpdump:
    """`with Tcpdump(netns, pcap, "-i", "any", "tcp"):` captures for the block; then `.captured`, `.dropped`."""

    def __init__(self, netns: str, pcap: Path, *args: str) -> None:
        self._command = ["ip", "netns", "exec", netns, "tcpdump", *FLAGS, "-w", str(pcap), *args]
        self.stderr = ""

    def __enter__(self) -> Tcpdump:
        self._proc = subprocess.Popen(self._command, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_line(self._proc, self._proc.stderr, "listening on", 60, "tcpdump to listen")
        except BaseException:
            self._proc.kill()
            self._proc.communicate(timeout=30)
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._proc.terminate()
        _, self.stderr = self._proc.communicate(timeout=10)

    def _count(self, what: str) -> int:
        found = re.search(rf"(\d+) packets? {what}", self.stderr)
        assert found, f"got tcpdump stderr {self.stderr!r}; want its '{what}' count"
        return int(found.group(1))

    @property
    def captured(self) -> int:
        return self._count("captured")

    @property
    def dropped(self) -> int:
        return self._count("dropped by kernel")
