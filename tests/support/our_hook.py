# SPDX-License-Identifier: MIT
"""What of ours is attached at an interface's ingress, in either mode: clsact filters named ours, and
tcx programs loaded under our entry points' names."""

from __future__ import annotations

import re
import subprocess

from pyroute2 import IPRoute

from collector.kernel import tcx
from collector.kernel.clsact import FILTER_NAME
from collector.kernel.program import FUNCTION, RAW_IP_FUNCTION


def clsact_filters(netns: str, ifname: str) -> int:
    shown = subprocess.run(
        ["tc", "-n", netns, "filter", "show", "dev", ifname, "ingress"], capture_output=True, text=True, check=True
    ).stdout
    return len(re.findall(rf"handle 0xadd {FILTER_NAME}\b", shown))


def ifindex(netns: str, ifname: str) -> int:
    with IPRoute(netns=netns) as ipr:
        return ipr.link_lookup(ifname=ifname)[0]


def tcx_programs(netns: str, ifname: str) -> list[str]:
    """The names of the programs in the interface's tcx ingress chain, in the order they run."""
    return [tcx.program_name(i) for i in tcx.ingress_programs(ifindex(netns, ifname), netns)]


def ours_attached(netns: str, ifname: str) -> int:
    # The kernel keeps 15 characters of a program's name.
    ours = {FUNCTION[:15], RAW_IP_FUNCTION[:15]}
    return clsact_filters(netns, ifname) + sum(name in ours for name in tcx_programs(netns, ifname))
