# SPDX-License-Identifier: MIT
"""Frames through the loaded kernel program with BPF_PROG_TEST_RUN: the replay path and the tests.

libbpf's bpf_prog_test_run_opts on a `struct bpf_test_run_opts` prepared once: per frame, one
struct.pack_into stores the mark and the frame's length and address (the skb context lies just
before the opts in one buffer, so one pack reaches both), and one call with its arguments bound in
advance runs it. It costs fewer instructions per frame than bpf(2) through libc's syscall() (two
arguments to convert instead of four; ~2,600 against ~3,150 a call, cachegrind), and libbpf knows
bpf(2)'s number on every machine it is built for. SCHED_CLS test runs take the frame from its
Ethernet header on, as TC ingress sees it; perf_submit inside a test run reaches the program's perf
buffer like live traffic.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from functools import cache, partial

from collector.errors import CollectorError
from collector.kernel import libbpf

# The kernel's own errno for an operation a program type does not support (include/linux/errno.h).
ENOTSUPP = 524
# struct bpf_test_run_opts (libbpf's bpf.h; the same since libbpf 0.8): sz, data_in, data_out,
# data_size_in, data_size_out, ctx_in, ctx_out, ctx_size_in, ctx_size_out, retval, repeat, duration,
# flags, cpu, batch_size.
_OPTS = struct.Struct("=QQQIIQQIIIiIIII")
_OPTS_SIZE = _OPTS.size
# struct __sk_buff up to `mark`: the kernel zero-fills the rest and wants len and pkt_type zero.
_SKB_HEAD = struct.Struct("=III")
# One buffer: the skb context, then the opts, at a multiple of 8 as libbpf's C expects. Offsets in it.
_MARK = 8
_OPTS_AT = 16
_RETVAL, _REPEAT, _DURATION = (_OPTS_AT + offset for offset in (56, 60, 64))
# What changes per frame, from the mark on: mark, (padding), sz (rewritten, the same), data_in,
# data_out (0), data_size_in, data_size_out (0: the kernel would take the last run's output size as a
# limit).
_PER_FRAME = struct.Struct("=I4xQQQII")
_U32 = struct.Struct("=I")
# Where a bytes object keeps its bytes (CPython: the header, then ob_sval): the frame is passed where
# it lies, without a copy into a ctypes buffer.
_BYTES_DATA = bytes.__basicsize__ - 1

# The kernel refuses a SCHED_CLS test run shorter than an Ethernet header.
MIN_FRAME = 14
# The kernel test-runs a frame of at most a page less its skb overhead (3,712 bytes on x86-64 with
# 4 KiB pages) and refuses a longer one with EINVAL. The program reads only headers, so `attempt` runs
# a longer frame (a TSO super-segment captured on its sender) cut to this, as a snap length would have
# cut it: the kernel is given a shorter length, nothing is copied.
MAX_TEST_FRAME = 2048


@cache
def _holding_gil() -> ctypes.PyDLL:
    """libbpf through PyDLL: the call keeps the GIL. A test run takes microseconds and replay runs no
    other thread in the meantime, while handing the GIL over and taking it back cost ~280 of the
    ~12,000 instructions of userspace a replayed frame costs (cachegrind)."""
    libbpf.library()  # a CollectorError naming the package when it is missing
    return ctypes.PyDLL(libbpf.LIBRARY, use_errno=True)


class TestRunner:
    """Runs frames through one program fd; `mark` reaches the program as skb->mark."""

    __test__ = False  # not a pytest class, despite the name

    def __init__(self, prog_fd: int) -> None:
        self._buf = bytearray(_OPTS_AT + _OPTS_SIZE)
        ctx = ctypes.addressof(ctypes.c_char.from_buffer(self._buf))
        _OPTS.pack_into(self._buf, _OPTS_AT, _OPTS_SIZE, 0, 0, 0, 0, ctx, 0, _SKB_HEAD.size, 0, 0, 1, 0, 0, 0, 0)
        # Per frame in `addaddr replay`: no Python frame. The fd goes as a plain int (ctypes passes it
        # in a register as it is; libffi widens it) and the opts as a ctypes array over the buffer:
        # ctypes would make an argument object per call for a c_int or c_void_p.
        opts = (ctypes.c_char * _OPTS_SIZE).from_buffer(self._buf, _OPTS_AT)
        self._call = partial(_holding_gil().bpf_prog_test_run_opts, prog_fd, opts)
        self._set = _PER_FRAME.pack_into

    def attempt(self, frame: bytes, mark: int) -> bool:
        """Runs `frame`, its first MAX_TEST_FRAME bytes if longer; False when it is shorter than MIN_FRAME
        or the kernel refuses it as too short for its own headers (ENOSPC, EINVAL), as live such a
        frame would reach the program and count `unparsed`. Once per frame in `addaddr replay`."""
        size = len(frame)
        if size < MIN_FRAME:
            return False
        self._set(
            self._buf,
            _MARK,
            mark,
            _OPTS_SIZE,
            id(frame) + _BYTES_DATA,
            0,
            size if size <= MAX_TEST_FRAME else MAX_TEST_FRAME,
            0,
        )
        if self._call() == 0:
            return True
        err = ctypes.get_errno()
        if err in (errno.ENOSPC, errno.EINVAL):
            return False
        raise self._error(err)

    def run(self, frame: bytes, mark: int = 0) -> int:
        """The program's return value for this frame (bytes)."""
        if len(frame) < MIN_FRAME:
            raise ValueError(f"frame of {len(frame)} bytes is shorter than an Ethernet header")
        frame = bytes(frame)
        self._set(self._buf, _MARK, mark, _OPTS_SIZE, id(frame) + _BYTES_DATA, 0, len(frame), 0)
        if self._call() != 0:
            raise self._error(ctypes.get_errno())
        retval = _U32.unpack_from(self._buf, _RETVAL)[0]
        return retval - (1 << 32) if retval >= 1 << 31 else retval

    @staticmethod
    def _error(err: int) -> OSError:
        """The OSError to raise for a failed run; CollectorError at once for a kernel without test runs."""
        if err in (ENOTSUPP, errno.EOPNOTSUPP):
            raise CollectorError(
                f"kernel {os.uname().release} lacks BPF_PROG_TEST_RUN for SCHED_CLS "
                "programs, which addaddr replay needs (Linux 5.10 or later has it)"
            )
        return OSError(err, f"BPF_PROG_TEST_RUN failed: {os.strerror(err)}")

    def time(self, frame: bytes, repeat: int) -> int:
        """Average nanoseconds per run over `repeat` runs inside the kernel (for scripts/bench)."""
        _U32.pack_into(self._buf, _REPEAT, repeat)
        try:
            self.run(frame)
            return _U32.unpack_from(self._buf, _DURATION)[0]
        finally:
            _U32.pack_into(self._buf, _REPEAT, 1)
