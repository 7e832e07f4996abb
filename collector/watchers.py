"""One `addaddr run` per interface: a flock'd file per (network namespace, interface) in LOCK_DIR.

A second run on an interface another one watches would take its filter over (same prio and handle)
and remove it when it stops, leaving the first blind. The lock is taken before the filter is touched
and held, through its open fd, for the life of the process: the kernel frees it when the process
ends, however it ends, so a filter found while holding the lock was left behind by a run that is
really gone.

The files are named for the namespace's inode (the same namespace under two names is one) and the
interface's name (a reattach after the interface came back keeps the lock; its index changes).
"""

from __future__ import annotations

import fcntl
import os
import stat

from .errors import CollectorError
from .netns import NETNS_DIR

LOCK_DIR = "/run/addaddr"
HOST_NETNS = "/proc/self/ns/net"


def netns_inode(netns: str | None) -> int:
    """The inode of a named namespace, or of this process's; FileNotFoundError when there is no such name."""
    return os.stat(os.path.join(NETNS_DIR, netns) if netns else HOST_NETNS).st_ino


class WatchLock:
    """Held from construction to close(); CollectorError naming the holder's pid when another run has it."""

    def __init__(self, ifname: str, netns: str | None, lock_dir: str = LOCK_DIR) -> None:
        where = f"{ifname}{' in ' + netns if netns else ''}"
        try:
            name = f"net{netns_inode(netns)}-{ifname}.lock"
        except FileNotFoundError:
            raise CollectorError(f"no network namespace {netns!r} (see: ip netns list)") from None
        directory = _open_dir(lock_dir)
        try:
            # O_NOFOLLOW and the checks below: a link or a file planted there must not be written.
            self._fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                               0o600, dir_fd=directory)
        except OSError as exc:
            raise CollectorError(f"cannot lock {where} in {lock_dir}/{name}: {exc.strerror}") from None
        finally:
            os.close(directory)
        try:
            _check_ours(self._fd, f"{lock_dir}/{name}")
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CollectorError(f"{where} is already watched by addaddr run (pid {_holder(self._fd)}); "
                                     "stop that one first, or watch another interface") from None
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(self._fd)
            raise

    def close(self) -> None:
        # The file stays: removing it would race with a run that has just opened it to lock it.
        os.close(self._fd)


def _open_dir(lock_dir: str) -> int:
    try:
        os.mkdir(lock_dir, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise CollectorError(f"cannot make {lock_dir}: {exc.strerror}") from None
    try:
        fd = os.open(lock_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise CollectorError(f"cannot open {lock_dir}: {exc.strerror}") from None
    status = os.fstat(fd)
    if status.st_uid != os.geteuid() or status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        os.close(fd)
        raise CollectorError(f"{lock_dir} is writable by others than us (owner {status.st_uid}, mode "
                             f"{stat.S_IMODE(status.st_mode):o}): remove it, addaddr makes it again")
    return fd


def _check_ours(fd: int, path: str) -> None:
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1 or status.st_uid != os.geteuid():
        raise CollectorError(f"{path} is not a lock file addaddr made (a link, or another user's): remove it")


def _holder(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"
