# SPDX-License-Identifier: MIT
"""Least privilege for `addaddr run`: the capabilities it needs without full root, and the drop to an
unprivileged user once the program is loaded, attached and its perf buffer open (like tcpdump -Z).

The fds opened before the drop (program, maps, perf buffers, the open log file) keep working: the
kernel checks privilege when such an fd is made, not when it is read. A tcx link is such an fd too: it
stays attached for as long as the dropped process lives and goes with it. What needs privilege
afterwards fails: loading, attaching, and also removing a clsact filter on exit
(deploy/addaddr.service does that).
"""

from __future__ import annotations

import ctypes
import os
import pwd
import resource
from pathlib import Path

from collector.errors import CollectorError
from collector.kernel import syscall
from collector.logs.directory import NotALog, log_files, open_ours

# linux/capability.h, for the capabilities named in this module and in deploy/addaddr.service.
CAP_NUMBERS = {
    "CAP_CHOWN": 0,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_NET_ADMIN": 12,
    "CAP_IPC_LOCK": 14,
    "CAP_SYS_ADMIN": 21,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
}

# What `run` needs each capability for, when it runs without full root.
RUN_CAPABILITIES = {
    "CAP_BPF": "load the program and create its maps",
    "CAP_NET_ADMIN": "load a SCHED_CLS program and link it in tcx or add its filter at clsact ingress",
    "CAP_PERFMON": "open the per-CPU perf events behind the perf buffer",
    "CAP_SYS_ADMIN": "enter a named network namespace (--netns)",
    "CAP_IPC_LOCK": "lock the perf buffer's pages beyond RLIMIT_MEMLOCK (not needed with LimitMEMLOCK=infinity)",
}
# What drop_to needs besides: setgroups/setgid, setuid, and handing the log over.
DROP_CAPABILITIES = ("CAP_SETGID", "CAP_SETUID", "CAP_CHOWN")

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_RET_ALLOW = 0x7FFF0000
BPF_RET_K = 0x06  # BPF_RET | BPF_K: return the constant k
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    # Two of these, for capabilities 0-31 and 32-63.
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def required_capabilities(netns: bool = False, drop: bool = False) -> list[str]:
    """The capabilities `run` needs without full root (see RUN_CAPABILITIES for why): CAP_SYS_ADMIN
    only with a named namespace, CAP_IPC_LOCK only while RLIMIT_MEMLOCK is finite, and
    DROP_CAPABILITIES to drop to a --user."""
    needed = ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"]
    if netns:
        needed.append("CAP_SYS_ADMIN")
    if resource.getrlimit(resource.RLIMIT_MEMLOCK)[0] != resource.RLIM_INFINITY:
        needed.append("CAP_IPC_LOCK")
    if drop:
        needed.extend(DROP_CAPABILITIES)
    return needed


def missing_capabilities(netns: bool = False, drop: bool = False) -> list[str]:
    """Those of required_capabilities() not in this thread's effective set; empty: `run` can go on."""
    effective = int(_status("/proc/thread-self/status")["CapEff"], 16)
    return [name for name in required_capabilities(netns, drop) if not effective >> CAP_NUMBERS[name] & 1]


def check_user(user: str) -> pwd.struct_passwd:
    """The passwd entry of `user`, for --user; CollectorError when there is no such user."""
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise CollectorError(f"no user {user!r} (see: getent passwd)") from None


def drop_to(user: str, log_dir: str) -> None:
    """Become `user` for good, in every thread, with no capability left; or raise CollectorError.

    Call it once the program is loaded, its perf buffer open, its filters attached and the log
    open in `log_dir`, which is handed to the user so that rotation goes on working.
    """
    account = check_user(user)
    try:
        _hand_over(Path(log_dir), account.pw_uid, account.pw_gid)
        # glibc runs these three in every thread of the process (SIGSETXID), not only in this one.
        os.initgroups(account.pw_name, account.pw_gid)
        os.setgid(account.pw_gid)
        # Before setuid: clearing the bounding set needs CAP_SETPCAP, which setuid takes away.
        _drop_bounding_set()
        _clear_inheritable()
        os.setuid(account.pw_uid)  # from root: clears the permitted, effective and ambient sets
    except PermissionError as exc:
        raise CollectorError(
            f"cannot drop to {user!r} ({exc.strerror}): that needs root, or {', '.join(DROP_CAPABILITIES)}"
        ) from None
    except OSError as exc:  # the log dir's: a missing one, say
        raise CollectorError(f"log dir {log_dir}: {exc.strerror}") from None
    _set_no_new_privs_everywhere()
    left = _left_over(account)
    if left:
        raise CollectorError(f"dropping to {user!r} left privilege behind: {'; '.join(left)}")
    if not os.access(log_dir, os.W_OK | os.X_OK):
        raise CollectorError(
            f"log dir {log_dir} is not writable by {user!r}, so the log could not rotate: "
            "choose one under directories it can enter"
        )


def _hand_over(log_dir: Path, uid: int, gid: int) -> None:
    # The files first: once the dir is the user's, root without CAP_DAC_OVERRIDE cannot list it.
    # Through a checked descriptor: a symbolic or hard link planted there must not hand over the
    # file it leads to (/etc/shadow, say), nor anything not the collector's.
    for path in log_files(log_dir):
        try:
            fd = open_ours(path, log_dir)
        except NotALog:
            continue  # not the collector's: left as it is, and readers skip what is no log file
        try:
            os.fchown(fd, uid, gid)
        finally:
            os.close(fd)
    os.chown(log_dir, uid, gid)


def _drop_bounding_set() -> None:
    # Best effort: it needs CAP_SETPCAP, which the systemd unit does not grant. What stays is inert
    # under no_new_privs, as the bounding set only limits what an execve can gain.
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)


def _clear_inheritable() -> None:
    # setuid leaves the inheritable set alone (container runtimes have been known to fill it);
    # the ambient set, a subset of it, goes with it.
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data), "capget")
    for half in data:
        half.inheritable = 0
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def _set_no_new_privs_everywhere() -> None:
    """no_new_privs in every thread: no execve (of a setuid binary, say) can gain privilege again."""
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    if all(status["NoNewPrivs"] == "1" for _, status in _thread_statuses()):
        # Threads started after NoNewPrivileges=yes (the unit) have it; the unit's SystemCallFilter
        # would kill the process for the seccomp() below.
        return
    # no_new_privs is per thread, and only seccomp's TSYNC reaches the others: installing a filter
    # that allows everything in every thread copies this thread's no_new_privs to each of them.
    allow = _SockFilter(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW)
    program = _SockFprog(1, ctypes.pointer(allow))
    try:
        syscall.call("seccomp", SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, ctypes.byref(program))
    except OSError as exc:
        raise _failed("seccomp(SECCOMP_FILTER_FLAG_TSYNC)", exc.strerror) from None


def _left_over(account: pwd.struct_passwd) -> list[str]:
    """What any thread holds beyond what `account` has; empty when the drop is complete."""
    want = {
        "Uid": [str(account.pw_uid)] * 4,  # real, effective, saved, filesystem
        "Gid": [str(account.pw_gid)] * 4,
        "Groups": sorted(str(g) for g in set(os.getgrouplist(account.pw_name, account.pw_gid))),
        "CapEff": ["0000000000000000"],
        "CapPrm": ["0000000000000000"],
        "CapInh": ["0000000000000000"],
        "CapAmb": ["0000000000000000"],
        "NoNewPrivs": ["1"],
    }
    left = []
    for tid, status in _thread_statuses():
        for field, value in want.items():
            got = status[field].split()
            if (sorted(got) if field == "Groups" else got) != value:
                left.append(f"thread {tid} {field} {' '.join(got)}")
    return left


def _thread_statuses():
    for tid in os.listdir("/proc/self/task"):
        try:
            yield tid, _status(f"/proc/self/task/{tid}/status")
        except FileNotFoundError:
            continue  # the thread ended meanwhile


def _status(path: str) -> dict[str, str]:
    with open(path) as f:
        return {key: value.strip() for key, _, value in (line.partition(":") for line in f)}


def _check(result: int, what: str) -> None:
    if result != 0:
        raise _failed(what, os.strerror(ctypes.get_errno()))


def _failed(what: str, reason: str) -> CollectorError:
    return CollectorError(f"{what} failed: {reason}; not running on with privilege")
