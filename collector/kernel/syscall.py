# SPDX-License-Identifier: MIT
"""The system calls glibc has no wrapper for, bpf() and seccomp(), by number: the one place that knows
their numbers, for every machine addaddr runs on.

The tcx link API (collector/kernel/tcx.py) and seccomp() (collector/live/privileges.py) go through
here; the rest of BPF goes through libbpf (collector/kernel/libbpf.py, and the test runs of
collector/kernel/testrun.py), which knows bpf()'s number itself.
"""

from __future__ import annotations

import ctypes
import errno
import os

# By os.uname().machine, from the kernel's syscall tables: arch/x86/entry/syscalls/syscall_64.tbl;
# the generic table (include/uapi/asm-generic/unistd.h, scripts/syscall.tbl since 6.11) that aarch64,
# riscv64 and loongarch64 share; arch/powerpc/kernel/syscalls/syscall.tbl;
# arch/s390/kernel/syscalls/syscall.tbl.
NUMBERS = {
    "x86_64": {"bpf": 321, "seccomp": 317},
    "aarch64": {"bpf": 280, "seccomp": 277},
    "riscv64": {"bpf": 280, "seccomp": 277},
    "loongarch64": {"bpf": 280, "seccomp": 277},
    "ppc64le": {"bpf": 361, "seccomp": 358},
    "s390x": {"bpf": 351, "seccomp": 348},
}
MACHINE = os.uname().machine

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def number(name: str) -> int:
    """`name`'s number on this machine; OSError ENOSYS, as from a kernel without it, on a machine
    not in NUMBERS."""
    try:
        return NUMBERS[MACHINE][name]
    except KeyError:
        raise OSError(
            errno.ENOSYS,
            f"{name}() on {MACHINE} is not known to addaddr, which knows its number on {', '.join(NUMBERS)}",
        ) from None


def call(name: str, *args) -> int:
    """The system call `name` (a key of NUMBERS' rows) with `args`: its result, or OSError."""
    result = _libc.syscall(number(name), *args)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result
