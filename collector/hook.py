"""Where the program goes on each interface: first in the tcx chain (kernel >= 6.6), or a clsact filter,
with the entry point that fits the device's link layer; and, in clsact, what would hide packets from us.

tcx runs before every clsact filter: on a host where Cilium (>= 1.16) or another tcx program returns
a verdict, a clsact filter of ours sees nothing. Linked first in tcx we see every packet, and return
TCX_NEXT so that whatever the others decide still holds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from . import attach as clsact
from . import tcx
from .errors import CollectorError
from .link_layer import has_ethernet_header
from .program import CaptureProgram

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
    fd: int

    def detach(self) -> None:
        # No privilege needed, so this works after --user's drop as well.
        os.close(self.fd)


def find_devices(interfaces: tuple[str, ...], netns: str | None) -> list[clsact.Device]:
    """The interfaces, checked before the program is loaded: a typo fails at once."""
    devices = [clsact.find_device(ifname, netns) for ifname in interfaces]
    for device in devices:
        has_ethernet_header(device.ifname, device.link_type)
    return devices


def attach_all(program: CaptureProgram, devices: list[clsact.Device], netns: str | None, mode: str,
               say: Callable[[str], None], attached: list) -> None:
    """Attaches on every device by `mode` (tcx or clsact), appending each attachment to `attached`
    as it is made: the caller detaches them, those made before a failure included."""
    fds = [program.fd_for(has_ethernet_header(d.ifname, d.link_type)) for d in devices]
    if mode == "clsact":
        for device, fd in zip(devices, fds):
            _warn_what_hides(device, netns, say)
            attachment = clsact.attach(fd, device.ifname, netns)
            attached.append(attachment)
            if attachment.replaced_stale:
                say(f"{device.ifname}: replaced the filter a previous run left behind")
        return
    # Every netlink exchange first: pyroute2 forks a helper for a namespace, and a child that
    # inherited a link fd would keep the link alive past our own exit.
    for device in devices:
        if clsact.remove_stale(device.ifname, netns):
            say(f"{device.ifname}: removed the clsact filter a previous run left behind")
    for device, fd in zip(devices, fds):
        try:
            attached.append(TcxLink(device.ifname, tcx.link(fd, device.ifindex, netns)))
        except OSError as exc:
            raise CollectorError(f"{device.ifname}: cannot link at tcx ingress ({exc.strerror}); "
                                 "try --attach clsact") from None


def _warn_what_hides(device: clsact.Device, netns: str | None, say: Callable[[str], None]) -> None:
    if tcx.available():
        for prog_id in tcx.ingress_programs(device.ifindex, netns):
            say(f"warning: {device.ifname}: tcx program {tcx.program_name(prog_id)!r} (id {prog_id}) runs before "
                "every clsact filter, and the packets it passes or drops never reach ours: use --attach tcx "
                "(Linux >= 6.6), which links ours first")
    for prio, name in clsact.filters_in_front(device.ifname, netns):
        say(f"warning: {device.ifname}: direct-action filter {name!r} at prio {prio} runs before ours (prio "
            f"{clsact.PRIO}), and the packets it passes or drops never reach ours: move it after prio "
            f"{clsact.PRIO}, or use --attach tcx (Linux >= 6.6)")
