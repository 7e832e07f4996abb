# SPDX-License-Identifier: MIT
"""A wire between two tun devices in two namespaces: what one end's stack sends, the other end's
receives, as a VPN (WireGuard, OpenVPN) would carry it. For testbeds of devices without an Ethernet
header: this kernel has tun but no ipip, sit, gre or wireguard.

Packets written to a tun fd reach the device's ingress, TC included, starting at the IP header.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import struct
import threading

from collector.kernel.netns import entered

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000  # no packet-information prefix: the kernel takes the family from the IP version
MAX_PACKET = 65536


def open_tun(netns: str, name: str) -> int:
    """Creates tun device `name` in `netns`; it lives as long as the returned fd."""
    # The device goes to the namespace the fd was opened in.
    with entered(netns):
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


class TunWire:
    """Carries packets between two tun fds in a thread until `close()`, which also closes the fds
    (and so removes the devices)."""

    def __init__(self, a: int, b: int) -> None:
        self._peer = {a: b, b: a}
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._carry, name="tun-wire", daemon=True)
        self._thread.start()

    def _carry(self) -> None:
        while True:
            ready, _, _ = select.select([*self._peer, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            for fd in ready:
                with contextlib.suppress(OSError):  # a device down or gone: the packet is lost, as on a real wire
                    os.write(self._peer[fd], os.read(fd, MAX_PACKET))

    def close(self) -> None:
        """Stops the thread, then closes the tun fds (which removes the devices) and its pipe."""
        os.write(self._stop_w, b"x")
        self._thread.join()
        for fd in (*self._peer, self._stop_r, self._stop_w):
            os.close(fd)
