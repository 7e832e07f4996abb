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
from typing import TextIO

from .attach import Attachment, attach
from .errors import CollectorError
from .netns import socket_in
from .watchers import WatchLock, netns_inode

SIOCGIFINDEX = 0x8933
IFNAMSIZ = 16
_IFREQ = struct.Struct("16si12x")  # struct ifreq: the name, then ifr_ifindex in the union
GONE, BACK = "gone", "back"


def where(netns: str | None) -> str:
    return f"network namespace {netns!r}" if netns else "the host namespace"


def no_interface(ifname: str, netns: str | None) -> CollectorError:
    return CollectorError(f"no interface {ifname!r} in {where(netns)} (see: ip link)")


class WatchedInterfaces:
    """Checks the namespace and the interfaces and takes their locks (CollectorError, nothing made,
    when one fails); then attaches, follows and detaches the filters. close() frees the locks."""

    def __init__(self, interfaces: tuple[str, ...], netns: str | None, status: TextIO) -> None:
        twice = sorted({ifname for ifname in interfaces if interfaces.count(ifname) > 1})
        if twice:
            # Its second lock would be refused, naming this very run.
            raise CollectorError(f"--iface {twice[0]} given twice: give each interface once")
        self.netns = netns
        self._status = status
        try:
            self._netns_inode = netns_inode(netns)
        except FileNotFoundError:
            raise CollectorError(f"no network namespace {netns!r} (see: ip netns list)") from None
        # AF_UNIX: any socket answers interface ioctls for its namespace, and this one needs no IP.
        self._socket = socket_in(netns, socket.AF_UNIX, socket.SOCK_DGRAM) if netns else \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._locks: list[WatchLock] = []
        try:
            for ifname in interfaces:
                if self._index(ifname) is None:
                    raise no_interface(ifname, netns)
            for ifname in interfaces:
                self._locks.append(WatchLock(ifname, netns))
        except BaseException:
            self.close()
            raise
        self.interfaces = interfaces
        self.attachments: dict[str, Attachment] = {}
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

    def attach_all(self, prog_fd: int) -> None:
        for ifname in self.interfaces:
            attachment = attach(prog_fd, ifname, self.netns)
            self.attachments[ifname] = attachment
            if attachment.replaced_stale:
                self._say(f"{ifname}: replaced the filter a previous run left behind")

    def netns_deleted(self) -> bool:
        """The namespace's name is gone, or names another namespace now."""
        try:
            return self.netns is not None and netns_inode(self.netns) != self._netns_inode
        except FileNotFoundError:
            return True

    def check(self, prog_fd: int) -> list[dict]:
        """The `interface` records of what changed since the last check; the filter attached again on
        an interface that came back."""
        records = []
        for ifname in self.interfaces:
            index = self._index(ifname)
            attached = self.attachments.get(ifname)
            if attached is not None and index != attached.ifindex:
                del self.attachments[ifname]
                self._say(f"{ifname}: interface gone (ifindex {attached.ifindex}); "
                          "watching for its return")
                records.append(self._record(ifname, attached.ifindex, GONE))
            if index is not None and ifname not in self.attachments and self._refused.get(ifname) != index:
                records.extend(self._reattach(prog_fd, ifname, index))
        return records

    def _reattach(self, prog_fd: int, ifname: str, index: int) -> list[dict]:
        try:
            self.attachments[ifname] = attach(prog_fd, ifname, self.netns)
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
        return {"kind": "interface", "time": time.time(), "iface": ifname, "ifindex": index,
                "netns": self.netns, "state": state}

    def detach_all(self) -> None:
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
            # and scripts/addaddr.service removes it as root once we exit.
            self._say(f"the filter stays on {', '.join(left)} (no privilege left to remove it)")

    def _say(self, line: str) -> None:
        print(f"addaddr: {line}", file=self._status, flush=True)

    def close(self) -> None:
        for lock in self._locks:
            lock.close()
        self._locks = []
        self._socket.close()
