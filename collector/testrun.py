"""Frames through the loaded kernel program with BPF_PROG_TEST_RUN: the replay path and the tests.

libbpf's bpf_prog_test_run_opts, through ctypes (collector/libbpf.py). SCHED_CLS test
runs take the frame from its Ethernet header on, as TC ingress sees it; perf_submit inside a test
run reaches the program's perf buffer like live traffic.
"""

from __future__ import annotations

import ctypes
import errno
import os

from .errors import CollectorError
from .libbpf import library

# The kernel's own errno for an operation a program type does not support (include/linux/errno.h).
ENOTSUPP = 524


class _TestRunOpts(ctypes.Structure):
    # struct bpf_test_run_opts, libbpf >= 1.0 (bpf/bpf.h)
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_char_p),  # takes a bytes object as it is: no copy, no cast
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


class _SkbHead(ctypes.Structure):
    """struct __sk_buff up to `mark`: the kernel zero-fills the rest and wants len and pkt_type zero."""

    _fields_ = [("len", ctypes.c_uint32), ("pkt_type", ctypes.c_uint32), ("mark", ctypes.c_uint32)]


# The kernel refuses a SCHED_CLS test run shorter than an Ethernet header.
MIN_FRAME = 14


def _libbpf():
    run = library().bpf_prog_test_run_opts
    run.argtypes = [ctypes.c_int, ctypes.POINTER(_TestRunOpts)]
    run.restype = ctypes.c_int
    return run


class TestRunner:
    """Runs frames through one program fd; `mark` reaches the program as skb->mark."""

    __test__ = False  # not a pytest class, despite the name

    def __init__(self, prog_fd: int) -> None:
        self._run = _libbpf()
        self._fd = prog_fd
        self._ctx = _SkbHead()
        self._opts = _TestRunOpts(sz=ctypes.sizeof(_TestRunOpts))
        self._opts.ctx_in = ctypes.addressof(self._ctx)
        self._opts.ctx_size_in = ctypes.sizeof(_SkbHead)
        self._opts.repeat = 1
        self._opts_ref = ctypes.byref(self._opts)

    def run(self, frame: bytes, mark: int = 0) -> int:
        """The program's return value for this frame (bytes)."""
        if len(frame) < MIN_FRAME:
            raise ValueError(f"frame of {len(frame)} bytes is shorter than an Ethernet header")
        # Per packet in `addaddr replay`: plain attribute stores, nothing allocated.
        self._ctx.mark = mark
        opts = self._opts
        opts.data_in = frame
        opts.data_size_in = len(frame)
        # libbpf writes the last run's output size here, and the kernel would take it as a limit.
        opts.data_size_out = 0
        if self._run(self._fd, self._opts_ref) != 0:
            err = ctypes.get_errno()
            if err in (ENOTSUPP, errno.EOPNOTSUPP):
                raise CollectorError(f"kernel {os.uname().release} lacks BPF_PROG_TEST_RUN for SCHED_CLS "
                                     "programs, which addaddr replay needs (Linux 5.10 or later has it)")
            raise OSError(err, f"BPF_PROG_TEST_RUN failed: {os.strerror(err)}")
        return opts.retval - (1 << 32) if opts.retval >= 1 << 31 else opts.retval

    def time(self, frame: bytes, repeat: int) -> int:
        """Average nanoseconds per run over `repeat` runs inside the kernel (for scripts/bench)."""
        self._opts.repeat = repeat
        try:
            self.run(frame)
            return self._opts.duration
        finally:
            self._opts.repeat = 1
