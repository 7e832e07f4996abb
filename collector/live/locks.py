# SPDX-License-Identifier: MIT
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

from collector.errors import CollectorError
from collector.kernel.netns import NETNS_DIR

LOCK_DIR = "/run/addaddr"
HOST_NETNS = "/proc/self/ns/net"


def netns_inode(netns: str | None) -> int:
    """The inode of a named namespace, or of this process's; FileNotFoundError when there is no such name."""
    return os.stat(os.path.join(NETNS_DIR, netns) if netns else HOST_NETNS).st_ino


class WatchLock:
    """Held from construction to close(); CollectorError naming the holder's pid when another run has it.

    close() removes the file, while still holding the lock, so that /run/addaddr does not gather one
    file per interface name ever watched. A run that opened the file just before it was removed would
    then lock a file no longer in the directory, alongside a newer run that made a new one: so a lock
    counts only once the name is seen still to lead to the very file locked, else the open is tried
    again.
    """

    # Each retry means another run removed the file between our open and our lock: a few cover any race.
    ATTEMPTS = 8

    def __init__(self, ifname: str, netns: str | None, lock_dir: str = LOCK_DIR) -> None:
        where = f"{ifname}{' in ' + netns if netns else ''}"
        try:
            self._name = f"net{netns_inode(netns)}-{ifname}.lock"
        except FileNotFoundError:
            raise CollectorError(f"no network namespace {netns!r} (see: ip netns list)") from None
        self._path = f"{lock_dir}/{self._name}"
        self._dir = _open_dir(lock_dir)
        try:
            for _ in range(self.ATTEMPTS):
                self._fd = self._open(where)
                if self._lock(where):
                    return
            raise CollectorError(
                f"cannot lock {where} in {self._path}: it was removed {self.ATTEMPTS} times "
                "as it was locked; is another program removing it?"
            )
        except BaseException:
            os.close(self._dir)
            raise

    def _open(self, where: str) -> int:
        try:
            # O_NOFOLLOW and the checks below: a link or a file planted there must not be written.
            return os.open(
                self._name,
                os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                0o600,
                dir_fd=self._dir,
            )
        except OSError as exc:
            raise CollectorError(f"cannot lock {where} in {self._path}: {exc.strerror}") from None

    def _lock(self, where: str) -> bool:
        """True when the lock is ours, on the file the name leads to; False (fd closed) to try again."""
        try:
            _check_ours(self._fd, self._path)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CollectorError(
                    f"{where} is already watched by addaddr run (pid {_holder(self._fd)}); "
                    "stop that one first, or watch another interface"
                ) from None
            if not self._named():
                os.close(self._fd)
                return False
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)
            return True
        except BaseException:
            os.close(self._fd)
            raise

    def _named(self) -> bool:
        """Whether the lock file's name still leads to our open file (not removed, not replaced)."""
        try:
            named = os.stat(self._name, dir_fd=self._dir, follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = os.fstat(self._fd)
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    def close(self) -> None:
        """Frees the lock, and removes its file while it is still ours."""
        # Removed while the lock is still held, and only when the name still leads to our file: never
        # a file another run made since. After --user there is no right left to write /run/addaddr
        # (root's, mode 0700): the file stays, harmless, and the next run on the interface reuses it.
        # Not handed to the user: a dropped run could then remove other runs' locks. The service's
        # RuntimeDirectory= removes the directory at stop.
        try:
            if self._named():
                os.unlink(self._name, dir_fd=self._dir)
        except OSError:
            pass
        os.close(self._fd)
        os.close(self._dir)


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
        raise CollectorError(
            f"{lock_dir} is writable by others than us (owner {status.st_uid}, mode "
            f"{stat.S_IMODE(status.st_mode):o}): remove it, addaddr makes it again"
        )
    return fd


def _check_ours(fd: int, path: str) -> None:
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1 or status.st_uid != os.geteuid():
        raise CollectorError(f"{path} is not a lock file addaddr made (a link, or another user's): remove it")


def _holder(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"
