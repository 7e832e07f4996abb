# SPDX-License-Identifier: MIT
"""Where the program goes on each interface: first in the tcx chain (kernel >= 6.6), or a clsact filter,
with the entry point that fits the device's link layer; and, in clsact, what would hide packets from us.

tcx runs before every clsact filter: on a host where Cilium (>= 1.16) or another tcx program returns
a verdict, a clsact filter of ours sees nothing. Linked first in tcx we see every packet, and return
TCX_NEXT so that whatever the others decide still holds.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass

from collector.errors import CollectorError
from collector.kernel import clsact, tcx
from collector.kernel.link_layer import has_ethernet_header
from collector.kernel.program import CaptureProgram

MODES = ("auto", "tcx", "clsact")


def choose(mode: str) -> str:
    """`tcx` or `clsact`; auto takes tcx where the kernel has it."""
    if mode == "auto":
        return "tcx" if tcx.available() else "clsact"
    if mode == "tcx" and not tcx.available():
        raise CollectorError("this kernel has no tcx (Linux >= 6.6): use --attach clsact")
    return mode


@dataclass
class TcxLink:
    """Our program first in one interface's tcx ingress chain, for as long as `fd` is open."""

    ifname: str
    ifindex: int
    fd: int

    def detach(self) -> None:
        """Takes our program out of the chain, by closing the link's fd; safe to call twice."""
        # No privilege needed, so this works after --user's drop as well.
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def gone(self) -> None:
        """The interface is gone, and the kernel has detached the link: the fd is still ours to close."""
        self.detach()


def prepare(ifname: str, ifindex: int, netns: str | None, mode: str, say: Callable[[str], None]) -> None:
    """At start, before anything is attached: in clsact, warns of what would hide packets from us; in
    tcx, removes the clsact filter a crashed clsact run left (it would see packets twice, and stay).

    Every netlink exchange comes before the first tcx link: pyroute2 forks a helper for a namespace,
    and a child that inherited a link fd would keep the link alive past our own exit."""
    if mode == "clsact":
        _warn_what_hides(ifname, ifindex, netns, say)
    elif clsact.remove_stale(ifname, ifindex, netns):
        say(f"{ifname}: removed the clsact filter a previous run left behind")


def attach(
    program: CaptureProgram,
    ifname: str,
    ifindex: int,
    link_type: int,
    netns: str | None,
    mode: str,
    say: Callable[[str], None],
) -> clsact.Attachment | TcxLink:
    """Our program, the entry point that fits the device's link layer, on `ifname`'s ingress by `mode`."""
    fd = program.fd_for(has_ethernet_header(ifname, link_type))
    if mode == "clsact":
        attachment = clsact.attach(fd, ifname, netns)
        if attachment.replaced_stale:
            say(f"{ifname}: replaced the filter a previous run left behind")
        return attachment
    try:
        return TcxLink(ifname, ifindex, tcx.link(fd, ifindex, netns))
    except OSError as exc:
        # EPERM: after --user (no CAP_NET_ADMIN left), where clsact would be refused as well.
        hint = "" if exc.errno == errno.EPERM else "; try --attach clsact"
        raise CollectorError(f"{ifname}: cannot link at tcx ingress ({exc.strerror}){hint}") from None


def _warn_what_hides(ifname: str, ifindex: int, netns: str | None, say: Callable[[str], None]) -> None:
    if tcx.available():
        for prog_id in tcx.ingress_programs(ifindex, netns):
            say(
                f"warning: {ifname}: tcx program {tcx.program_name(prog_id)!r} (id {prog_id}) runs before "
                "every clsact filter, and the packets it passes or drops never reach ours: use --attach tcx "
                "(Linux >= 6.6), which links ours first"
            )
    for prio, name in clsact.filters_in_front(ifname, netns):
        say(
            f"warning: {ifname}: direct-action filter {name!r} at prio {prio} runs before ours (prio "
            f"{clsact.PRIO}), and the packets it passes or drops never reach ours: move it after prio "
            f"{clsact.PRIO}, or use --attach tcx (Linux >= 6.6)"
        )
