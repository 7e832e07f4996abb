# SPDX-License-Identifier: MIT
"""The interfaces a run watches: checked before anything is made, locked, attached, and followed while
the run lasts, so that one deleted is reported at once and watched again when it returns.

Presence is asked with SIOCGIFINDEX on a socket made in the namespace at start: it needs no
privilege, so it goes on working after --user, and costs a system call per interface and check.
The socket holds the namespace: `ip netns del` removes its name, which is how its deletion is seen.
"""

from __future__ import annotations

import errno
import fcntl
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable

from collector.errors import CollectorError
from collector.kernel import hook
from collector.kernel.clsact import Attachment
from collector.kernel.link_layer import has_ethernet_header
from collector.kernel.netns import socket_in
from collector.kernel.program import CaptureProgram
from collector.live.locks import WatchLock, netns_inode

SIOCGIFINDEX = 0x8933
SIOCGIFHWADDR = 0x8927
IFNAMSIZ = 16
_IFREQ = struct.Struct("16si12x")  # struct ifreq: the name, then ifr_ifindex in the union
_IFREQ_HWADDR = struct.Struct("16sH22x")  # the name, then ifr_hwaddr: its sa_family is the ARPHRD_* type
GONE, BACK = "gone", "back"


def where(netns: str | None) -> str:
    """`netns` as messages name it: the namespace by name, or the host namespace."""
    return f"network namespace {netns!r}" if netns else "the host namespace"


def no_interface(ifname: str, netns: str | None) -> CollectorError:
    """The error for interface `ifname` missing in `netns`."""
    return CollectorError(f"no interface {ifname!r} in {where(netns)} (see: ip link)")


class WatchedInterfaces:
    """Checks the namespace, the interfaces and their link types and takes their locks (CollectorError,
    nothing made, when one fails); then attaches by `mode` (tcx or clsact), follows and detaches the
    program, telling `say` what the operator should know (a filter left behind replaced, a program that
    runs before ours, an interface gone or back). close() frees the locks."""

    def __init__(self, interfaces: tuple[str, ...], netns: str | None, say: Callable[[str], None], mode: str) -> None:
        twice = sorted({ifname for ifname in interfaces if interfaces.count(ifname) > 1})
        if twice:
            # Its second lock would be refused, naming this very run.
            raise CollectorError(f"--iface {twice[0]} given twice: give each interface once")
        self.netns = netns
        self.mode = mode
        self._say = say
        try:
            self._netns_inode = netns_inode(netns)
        except FileNotFoundError:
            raise CollectorError(f"no network namespace {netns!r} (see: ip netns list)") from None
        # AF_UNIX: any socket answers interface ioctls for its namespace, and this one needs no IP.
        self._socket = (
            socket_in(netns, socket.AF_UNIX, socket.SOCK_DGRAM)
            if netns
            else socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        )
        self._locks: list[WatchLock] = []
        try:
            for ifname in interfaces:
                if self._index(ifname) is None:
                    raise no_interface(ifname, netns)
            # Before the program loads: it loads the entry points these need.
            self.ethernet = tuple(has_ethernet_header(ifname, self._link_type(ifname)) for ifname in interfaces)
            for ifname in interfaces:
                self._locks.append(WatchLock(ifname, netns))
        except BaseException:
            self.close()
            raise
        self.interfaces = interfaces
        self.attachments: dict[str, Attachment | hook.TcxLink] = {}
        self._refused: dict[str, int] = {}  # interfaces back that could not be reattached: at which index
        self.changes: Counter[str] = Counter()  # GONE and BACK

    def _index(self, ifname: str) -> int | None:
        if len(ifname.encode()) >= IFNAMSIZ:
            return None  # the kernel would cut the name and could find another interface
        try:
            request = fcntl.ioctl(self._socket, SIOCGIFINDEX, _IFREQ.pack(ifname.encode(), 0))
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                return None
            raise
        return _IFREQ.unpack(request)[1]

    def _link_type(self, ifname: str) -> int:
        request = fcntl.ioctl(self._socket, SIOCGIFHWADDR, _IFREQ_HWADDR.pack(ifname.encode(), 0))
        return _IFREQ_HWADDR.unpack(request)[1]

    def _attach(self, program: CaptureProgram, ifname: str, index: int) -> Attachment | hook.TcxLink:
        return hook.attach(program, ifname, index, self._link_type(ifname), self.netns, self.mode, self._say)

    def attach_all(self, program: CaptureProgram) -> None:
        """Attaches `program` to every interface; CollectorError naming one that is gone, before any is
        attached."""
        indexes = {ifname: self._index(ifname) for ifname in self.interfaces}
        for ifname, index in indexes.items():
            if index is None:
                raise no_interface(ifname, self.netns)
            hook.prepare(ifname, index, self.netns, self.mode, self._say)
        for ifname, index in indexes.items():
            self.attachments[ifname] = self._attach(program, ifname, index)

    def netns_deleted(self) -> bool:
        """The namespace's name is gone, or names another namespace now."""
        try:
            return self.netns is not None and netns_inode(self.netns) != self._netns_inode
        except FileNotFoundError:
            return True

    def check(self, program: CaptureProgram) -> list[dict]:
        """The `interface` records of what changed since the last check; the program attached again on
        an interface that came back."""
        records = []
        for ifname in self.interfaces:
            index = self._index(ifname)
            attached = self.attachments.get(ifname)
            if attached is not None and index != attached.ifindex:
                del self.attachments[ifname]
                attached.gone()
                self._say(f"{ifname}: interface gone (ifindex {attached.ifindex}); watching for its return")
                records.append(self._record(ifname, attached.ifindex, GONE))
            if index is not None and ifname not in self.attachments and self._refused.get(ifname) != index:
                records.extend(self._reattach(program, ifname, index))
        return records

    def _reattach(self, program: CaptureProgram, ifname: str, index: int) -> list[dict]:
        try:
            # A new interface under the old name: no filter of a crashed run on it to remove.
            self.attachments[ifname] = self._attach(program, ifname, index)
        except (CollectorError, OSError) as exc:
            # After --user there is no privilege left to attach: said once per return.
            self._refused[ifname] = index
            self._say(f"{ifname}: interface back (ifindex {index}) but not watched: {exc}")
            return []
        self._refused.pop(ifname, None)
        self._say(f"{ifname}: interface back (ifindex {index}); watching it again")
        return [self._record(ifname, index, BACK)]

    def _record(self, ifname: str, index: int, state: str) -> dict:
        self.changes[state] += 1
        return {
            "kind": "interface",
            "time": time.time(),
            "iface": ifname,
            "ifindex": index,
            "netns": self.netns,
            "state": state,
        }

    def detach_all(self) -> None:
        """Takes the program off every interface; what stands in the way is told to `say`, not raised, so
        that the drain and the final records still happen."""
        left = []
        for attachment in self.attachments.values():
            try:
                attachment.detach()
            except PermissionError:
                left.append(attachment.ifname)
            except (CollectorError, OSError) as exc:
                # Whatever stands in the way of the detach, the drain and the final records still
                # happen: they are what "SIGTERM loses nothing" rests on.
                self._say(f"{attachment.ifname}: could not remove the filter ({exc})")
        if left:
            # After --user there is no CAP_NET_ADMIN to remove a filter: the next run replaces it,
            # and deploy/addaddr.service removes it as root once we exit.
            self._say(f"the filter stays on {', '.join(left)} (no privilege left to remove it)")

    def close(self) -> None:
        """Frees the interfaces' locks and the socket the lookups use."""
        for lock in self._locks:
            lock.close()
        self._locks = []
        self._socket.close()
