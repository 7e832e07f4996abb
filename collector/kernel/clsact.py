# SPDX-License-Identifier: MIT
"""Our filter on an interface's clsact ingress hook, with pyroute2: add it, and later remove just it.

Like libbpf-bootstrap's tc.c, detaching undoes only what attaching did: our filter always, the clsact
qdisc only if we created it and nothing else has been attached to it since.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from collector.errors import CollectorError
from collector.kernel.netns import socket_in

if TYPE_CHECKING:
    from pyroute2 import IPRoute

INGRESS = "ffff:fff2"
EGRESS = "ffff:fff3"
INGRESS_PARENT = 0xFFFFFFF2
EGRESS_PARENT = 0xFFFFFFF3
# Our place on the hook, and how a run recognises the filter a crashed run left behind. A low
# priority runs first; we return TC_ACT_UNSPEC, so filters after us still run.
PRIO = 0xAD
HANDLE = 0xADD
FILTER_NAME = "addaddr"
ETH_P_ALL = 0x0003
NETNS_DIR = "/run/netns"
TCA_BPF_FLAG_ACT_DIRECT = 1
# A dump of the qdiscs (linux/netlink.h, linux/rtnetlink.h): messages of a struct nlmsghdr then a
# struct tcmsg, each padded to 4 bytes, up to NLMSG_DONE.
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWQDISC = 36
RTM_GETQDISC = 38
NLM_F_DUMP_REQUEST = 0x301  # NLM_F_REQUEST | NLM_F_ROOT | NLM_F_MATCH
TC_H_CLSACT = 0xFFFFFFF1  # the clsact (or ingress) qdisc's parent, TC_H_INGRESS
_NLMSGHDR = struct.Struct("=IHHII")
_TCMSG = struct.Struct("=BxxxiIII")
# A dump answers in milliseconds; past this, the answer counts as unknown (pyroute2 then looks).
NETLINK_TIMEOUT = 5.0


def _where(netns: str | None) -> str:
    return f"network namespace {netns!r}" if netns else "the host namespace"


def _open(netns: str | None) -> IPRoute:
    # Imported here: pyroute2 costs ~0.3 s of CPU to import, which a tcx run seldom needs.
    from pyroute2 import IPRoute

    if netns is not None and not os.path.exists(os.path.join(NETNS_DIR, netns)):
        # pyroute2 would create a missing namespace rather than fail.
        raise CollectorError(f"no network namespace {netns!r} (see: ip netns list)")
    return IPRoute(netns=netns) if netns else IPRoute()


def _filters(ipr: IPRoute, index: int, parent: int) -> list:
    return [
        f
        for f in ipr.get_filters(index, parent=parent)
        if f.get_attr("TCA_KIND") == "bpf" and f.get_attr("TCA_OPTIONS") is not None
    ]


def _filter_name(f) -> str | None:
    return f.get_attr("TCA_OPTIONS").get_attr("TCA_BPF_NAME")


def _ours_at_our_place(f) -> bool:
    return f["info"] >> 16 == PRIO and f["handle"] == HANDLE


def _lookup(ipr: IPRoute, ifname: str, netns: str | None) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise CollectorError(f"no interface {ifname!r} in {_where(netns)} (see: ip link)")
    return found[0]


def filters_in_front(ifname: str, netns: str | None) -> list[tuple[int, str]]:
    """(prio, name) of the direct-action filters that run before ours at clsact ingress: one that
    returns TC_ACT_OK (or any verdict) ends the chain, and we never see that packet."""
    with _open(netns) as ipr:
        index = _lookup(ipr, ifname, netns)
        return [
            (f["info"] >> 16, _filter_name(f) or "(no name)")
            for f in _filters(ipr, index, INGRESS_PARENT)
            if f["info"] >> 16 < PRIO
            and (f.get_attr("TCA_OPTIONS").get_attr("TCA_BPF_FLAGS") or 0) & TCA_BPF_FLAG_ACT_DIRECT
        ]


def has_clsact(ifindex: int, netns: str | None) -> bool:
    """Whether the interface has a clsact (or ingress) qdisc, where a filter could be: a dump of the
    namespace's qdiscs, without pyroute2's import nor, in a namespace, its helper process. An error
    answer counts as yes (pyroute2 then looks)."""
    request = _TCMSG.pack(socket.AF_UNSPEC, ifindex, 0, 0, 0)
    family = (socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    with socket_in(netns, *family) if netns else socket.socket(*family) as route:
        route.settimeout(NETLINK_TIMEOUT)
        route.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(request), RTM_GETQDISC, NLM_F_DUMP_REQUEST, 1, 0) + request)
        while True:
            try:
                reply = route.recv(1 << 16)
            except TimeoutError:
                return True
            at = 0
            while at + _NLMSGHDR.size <= len(reply):
                length, kind = _NLMSGHDR.unpack_from(reply, at)[:2]
                if kind == NLMSG_DONE:
                    return False
                if kind == NLMSG_ERROR or length < _NLMSGHDR.size:
                    return True
                if kind == RTM_NEWQDISC:
                    _, index, _, parent, _ = _TCMSG.unpack_from(reply, at + _NLMSGHDR.size)
                    if index == ifindex and parent == TC_H_CLSACT:
                        return True
                at += (length + 3) & ~3


def remove_stale(ifname: str, ifindex: int, netns: str | None) -> bool:
    """Removes the filter a crashed clsact run of ours left at ingress; True if there was one."""
    if not has_clsact(ifindex, netns):
        return False
    with _open(netns) as ipr:
        index = _lookup(ipr, ifname, netns)
        stale = [
            f for f in _filters(ipr, index, INGRESS_PARENT) if _ours_at_our_place(f) and _filter_name(f) == FILTER_NAME
        ]
        if stale:
            ipr.tc("del-filter", "bpf", index, handle=HANDLE, parent=INGRESS, prio=PRIO, protocol=ETH_P_ALL)
        return bool(stale)


@dataclass
class Attachment:
    """Our filter on one interface; `replaced_stale` says a crashed run's filter was found there."""

    ifname: str
    netns: str | None
    ifindex: int
    created_clsact: bool
    replaced_stale: bool

    def gone(self) -> None:
        """The interface is gone: our filter went with it."""

    def detach(self) -> None:
        """Removes our filter; PermissionError when this process no longer may (after --user)."""
        if self.netns is not None and not os.path.exists(os.path.join(NETNS_DIR, self.netns)):
            return  # the namespace was deleted: its interfaces, and our filters on them, went with it
        # A netlink socket of its own: one kept open from attach time was seen to wait forever for
        # this reply (pyroute2 0.9, namespace sockets).
        with _open(self.netns) as ipr:
            from pyroute2.netlink.exceptions import NetlinkError

            try:
                ipr.tc("del-filter", "bpf", self.ifindex, handle=HANDLE, parent=INGRESS, prio=PRIO, protocol=ETH_P_ALL)
                if self.created_clsact and not _others_attached(ipr, self.ifindex):
                    ipr.tc("del", "clsact", self.ifindex)
            except NetlinkError as exc:
                if exc.code == errno.EPERM:
                    raise PermissionError(exc.code, f"{self.ifname}: not permitted to remove the filter") from None
                # Gone already: the interface or namespace was removed, or someone removed the filter.
                if exc.code not in (errno.ENOENT, errno.EINVAL, errno.ENODEV):
                    raise OSError(exc.code, f"{self.ifname}: {os.strerror(exc.code)}") from None


def _others_attached(ipr: IPRoute, index: int) -> bool:
    return any(ipr.get_filters(index, parent=p) for p in (INGRESS_PARENT, EGRESS_PARENT))


def attach(prog_fd: int, ifname: str, netns: str | None = None) -> Attachment:
    """Adds our filter at ingress of `ifname`, replacing one a crashed run of ours left there."""
    with _open(netns) as ipr:
        from pyroute2.netlink.exceptions import NetlinkError

        index = _lookup(ipr, ifname, netns)
        created = False
        try:
            try:
                ipr.tc("add", "clsact", index)
                created = True
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise
            stale = [f for f in _filters(ipr, index, INGRESS_PARENT) if _ours_at_our_place(f)]
            if stale and _filter_name(stale[0]) != FILTER_NAME:
                raise CollectorError(
                    f"{ifname}: ingress prio {PRIO} handle {HANDLE:#x} holds a foreign filter "
                    f"{_filter_name(stale[0])!r}; remove it or move it (tc filter show dev {ifname} ingress)"
                )
            ipr.tc(
                "replace-filter",
                "bpf",
                index,
                handle=HANDLE,
                fd=prog_fd,
                name=FILTER_NAME,
                parent=INGRESS,
                prio=PRIO,
                protocol=ETH_P_ALL,
                direct_action=True,
            )
        except BaseException as exc:
            if created:  # undo what this call did, and only that
                ipr.tc("del", "clsact", index)
            if isinstance(exc, NetlinkError):
                raise CollectorError(f"{ifname}: cannot attach at clsact ingress: {os.strerror(exc.code)}") from None
            raise
    return Attachment(ifname, netns, index, created, bool(stale))
