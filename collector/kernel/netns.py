# SPDX-License-Identifier: MIT
"""Sockets inside a named network namespace, from this process (Python 3.11 has no os.setns).

setns(CLONE_NEWNET) switches only the calling thread, and a socket stays in the namespace it was
created in, so the thread switches in, creates the socket and switches straight back.
"""

from __future__ import annotations

import ctypes
import os
import socket
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def entered(netns: str):
    """This thread inside `netns` for the duration of the block."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def socket_in(netns: str, family: int, kind: int = socket.SOCK_STREAM, proto: int = 0) -> socket.socket:
    """A socket made in namespace `netns`: it stays in it whichever namespace the caller is in."""
    with entered(netns):
        return socket.socket(family, kind, proto)
