# SPDX-License-Identifier: MIT
"""The tcx hook (kernel >= 6.6): our program linked at ingress through the bpf() link API, and what else
runs there.

A tcx link is owned by its file descriptor: the kernel detaches it when the last holder of the fd
exits, crash and kill -9 included, and closing it needs no privilege (so `run --user` detaches too).
Neither pyroute2 nor bcc 0.26 speak it, and this machine's <linux/bpf.h> predates it: the constants
and the bpf_attr layouts below are those of the kernel's include/uapi/linux/bpf.h.

tcx programs run before every clsact filter, in the chain's order; each returns TCX_NEXT (-1, the
same value as TC_ACT_UNSPEC) to hand the packet on, or a verdict (TCX_PASS, TCX_DROP...) that ends
the hook, clsact filters included.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from collector.errors import CollectorError
from collector.kernel import syscall
from collector.kernel.netns import entered

# enum bpf_cmd
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16
BPF_LINK_CREATE = 28
# enum bpf_attach_type
BPF_TCX_INGRESS = 46
# Link ordering: BPF_F_BEFORE with no relative program puts ours first in the chain.
BPF_F_BEFORE = 1 << 3
BPF_OBJ_NAME_LEN = 16
# Large enough for every union bpf_attr member used here; the kernel wants the tail zero.
_ATTR_SIZE = 128
# struct bpf_prog_info up to its name: type, id, tag[8], two lengths, two pointers, load_time,
# created_by_uid, nr_map_ids, map_ids, name[16].
_PROG_INFO = struct.Struct("=II8sIIQQQIIQ16s")
# The most programs on one hook we list by name.
MAX_PROGRAMS = 64


def call(cmd: int, request: ctypes.Array) -> int:
    """bpf(cmd, request): the result, or OSError (ENOSYS on a machine whose bpf() number is not known)."""
    return syscall.call("bpf", cmd, request, len(request))


def attr(fmt: str, *values) -> ctypes.Array:
    """A zeroed union bpf_attr with `values` packed from its start."""
    request = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into(fmt, request, 0, *values)
    return request


def link(prog_fd: int, ifindex: int, netns: str | None = None, first: bool = True) -> int:
    """Links `prog_fd` first (else last) in the tcx ingress chain of `ifindex` (in `netns`); returns
    the link fd, which holds the attachment: close it, or exit, and the program is detached."""
    # link_create: prog_fd, target_ifindex, attach_type, flags, tcx.relative_fd (at 16, 0: relative
    # to the whole chain), tcx.expected_revision (at 24, 0: any).
    request = attr("=IIIIIIQ", prog_fd, ifindex, BPF_TCX_INGRESS, BPF_F_BEFORE if first else 0, 0, 0, 0)
    if netns is None:
        return call(BPF_LINK_CREATE, request)
    # The kernel finds target_ifindex in the calling thread's namespace.
    with entered(netns):
        return call(BPF_LINK_CREATE, request)


def ingress_programs(ifindex: int, netns: str | None = None) -> list[int]:
    """The ids of the programs in the tcx ingress chain of `ifindex`, in the order they run."""
    ids = (ctypes.c_uint32 * MAX_PROGRAMS)()
    # query: target_ifindex, attach_type, query_flags, attach_flags, prog_ids (at 16), count (at 24).
    request = attr("=IIIIQI", ifindex, BPF_TCX_INGRESS, 0, 0, ctypes.addressof(ids), MAX_PROGRAMS)
    if netns is None:
        call(BPF_PROG_QUERY, request)
    else:
        with entered(netns):
            call(BPF_PROG_QUERY, request)
    count = struct.unpack_from("=I", request, 24)[0]
    return list(ids[: min(count, MAX_PROGRAMS)])


def available() -> bool:
    """Whether this kernel has tcx: a query of loopback's tcx ingress, which changes nothing, is
    refused with EINVAL by kernels before 6.6 (an unknown attach type)."""
    try:
        ingress_programs(1)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOSYS):
            return False
        raise CollectorError(
            f"cannot tell whether the kernel has tcx ({exc.strerror}); choose with --attach tcx or --attach clsact"
        ) from None
    return True


def program_name(prog_id: int) -> str:
    """The name a program was loaded with (15 characters at most), or `id N` when it is gone."""
    try:
        fd = call(BPF_PROG_GET_FD_BY_ID, attr("=I", prog_id))
    except OSError:
        return f"id {prog_id}"
    try:
        info = ctypes.create_string_buffer(_PROG_INFO.size)
        # info: bpf_fd, info_len, info pointer.
        call(BPF_OBJ_GET_INFO_BY_FD, attr("=IIQ", fd, _PROG_INFO.size, ctypes.addressof(info)))
    finally:
        os.close(fd)
    name = _PROG_INFO.unpack_from(info)[-1].split(b"\0", 1)[0].decode(errors="replace")
    return name or f"id {prog_id}"
