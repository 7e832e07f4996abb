# SPDX-License-Identifier: MIT
"""A stand-in for Cilium: a program of someone else's on the same hook, which returns pass (TCX_PASS,
the same value as TC_ACT_OK) for every packet and counts the packets it sees in an array map.

Loaded with raw bpf() from eleven instructions, so that nothing of ours (bcc, bpf/) is in it.
"""

from __future__ import annotations

import ctypes
import os
import struct

from collector.kernel import tcx

BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_PROG_LOAD = 5
BPF_MAP_TYPE_ARRAY = 2
BPF_PROG_TYPE_SCHED_CLS = 3
BPF_PSEUDO_MAP_FD = 1
BPF_FUNC_map_lookup_elem = 1
TCX_PASS = 0
NAME = "foreign_pass"
_INSN = struct.Struct("=BBhi")


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return _INSN.pack(code, src << 4 | dst, off, imm)


def _instructions(map_fd: int) -> bytes:
    return b"".join(
        [
            _insn(0x62, dst=10, off=-4, imm=0),  # *(u32 *)(r10 - 4) = 0: the key
            _insn(0xBF, dst=2, src=10),  # r2 = r10
            _insn(0x07, dst=2, imm=-4),  # r2 += -4
            _insn(0x18, dst=1, src=BPF_PSEUDO_MAP_FD, imm=map_fd),
            _insn(0),  # r1 = the map
            _insn(0x85, imm=BPF_FUNC_map_lookup_elem),  # r0 = lookup(r1, r2)
            _insn(0x15, dst=0, off=2, imm=0),  # if r0 == 0 goto pass
            _insn(0xB7, dst=1, imm=1),  # r1 = 1
            _insn(0xDB, dst=0, src=1, imm=0),  # lock *(u64 *)(r0 + 0) += r1
            _insn(0xB7, dst=0, imm=TCX_PASS),  # pass: r0 = TCX_PASS
            _insn(0x95),  # exit
        ]
    )


class ForeignProgram:
    """The loaded program (`fd`) and its counter; `close()` releases both."""

    def __init__(self) -> None:
        # map_create: map_type, key_size, value_size, max_entries.
        self.map_fd = tcx.call(BPF_MAP_CREATE, tcx.attr("=IIII", BPF_MAP_TYPE_ARRAY, 4, 8, 1))
        code = ctypes.create_string_buffer(_instructions(self.map_fd))
        license = ctypes.create_string_buffer(b"GPL")
        log = ctypes.create_string_buffer(65536)
        # prog_load: prog_type, insn_cnt, insns, license, log_level, log_size, log_buf, kern_version,
        # prog_flags, prog_name[16].
        request = tcx.attr(
            "=IIQQIIQII16s",
            BPF_PROG_TYPE_SCHED_CLS,
            len(code.raw) // 8,
            ctypes.addressof(code),
            ctypes.addressof(license),
            1,
            len(log),
            ctypes.addressof(log),
            0,
            0,
            NAME.encode(),
        )
        try:
            self.fd = tcx.call(BPF_PROG_LOAD, request)
        except OSError as exc:
            raise OSError(exc.errno, f"loading the foreign program: {exc.strerror}\n{log.value.decode()}") from None

    def packets(self) -> int:
        key, value = ctypes.c_uint32(0), ctypes.c_uint64()
        # map_elem: map_fd, (pad), key, value.
        tcx.call(BPF_MAP_LOOKUP_ELEM, tcx.attr("=IIQQ", self.map_fd, 0, ctypes.addressof(key), ctypes.addressof(value)))
        return value.value

    def close(self) -> None:
        os.close(self.fd)
        os.close(self.map_fd)
