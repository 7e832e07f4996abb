# SPDX-License-Identifier: MIT
"""libbpf.so.1 (Debian's libbpf1) through ctypes: the only way userspace reaches the kernel's BPF.

Loads a prebuilt object (program fd, map fds), checks first that the kernel has what the program
uses, reads per-CPU maps, reads perf buffers, and test-runs programs (collector/kernel/testrun.py). No
compiler, no headers: the only system requirement at run time is this library.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import select
import signal
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from functools import cache

from collector.errors import CollectorError

LIBRARY = "libbpf.so.1"
_p = ctypes.c_void_p

# Program, map and helper numbers of include/uapi/linux/bpf.h, for those the program uses: a helper
# outside this table is named by its number.
PROG_TYPE_SCHED_CLS = 3
_MAP_TYPES = {4: "perf event array", 6: "per-CPU array"}
_HELPERS = {1: "map_lookup_elem", 5: "ktime_get_ns", 25: "perf_event_output", 26: "skb_load_bytes"}
# struct bpf_insn: 8 bytes, code first; a helper call is BPF_JMP|BPF_CALL with src_reg 0, imm the id.
_CALL = 0x85


@cache
def library() -> ctypes.CDLL:
    """libbpf.so.1 with the signatures used here; a CollectorError naming the package when absent."""
    try:
        lib = ctypes.CDLL(LIBRARY, use_errno=True)
        lib.perf_buffer__buffer  # noqa: B018 the lookup raises AttributeError before libbpf 1.0: the newest symbol used
    except (OSError, AttributeError) as exc:
        raise CollectorError(
            f"{LIBRARY} is missing or too old ({exc}): install libbpf 1.x "
            "(Debian 12, Ubuntu 23.04 and later: apt-get install libbpf1)"
        ) from None
    for name, restype, argtypes in (
        ("libbpf_set_print", _p, [_p]),
        ("bpf_object__open_file", _p, [ctypes.c_char_p, _p]),
        ("bpf_object__load", ctypes.c_int, [_p]),
        ("bpf_object__close", None, [_p]),
        ("bpf_object__find_program_by_name", _p, [_p, ctypes.c_char_p]),
        ("bpf_object__find_map_fd_by_name", ctypes.c_int, [_p, ctypes.c_char_p]),
        ("bpf_object__next_map", _p, [_p, _p]),
        ("bpf_object__next_program", _p, [_p, _p]),
        ("bpf_map__type", ctypes.c_int, [_p]),
        ("bpf_map__name", ctypes.c_char_p, [_p]),
        ("bpf_map__reuse_fd", ctypes.c_int, [_p, ctypes.c_int]),
        ("bpf_program__set_autoload", ctypes.c_int, [_p, ctypes.c_bool]),
        ("bpf_program__fd", ctypes.c_int, [_p]),
        ("bpf_program__set_log_buf", ctypes.c_int, [_p, _p, ctypes.c_size_t]),
        ("bpf_program__type", ctypes.c_int, [_p]),
        ("bpf_program__insns", _p, [_p]),
        ("bpf_program__insn_cnt", ctypes.c_size_t, [_p]),
        ("bpf_map_lookup_elem", ctypes.c_int, [ctypes.c_int, _p, _p]),
        ("libbpf_num_possible_cpus", ctypes.c_int, []),
        ("libbpf_strerror", ctypes.c_int, [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]),
        ("libbpf_probe_bpf_prog_type", ctypes.c_int, [ctypes.c_int, _p]),
        ("libbpf_probe_bpf_map_type", ctypes.c_int, [ctypes.c_int, _p]),
        ("libbpf_probe_bpf_helper", ctypes.c_int, [ctypes.c_int, ctypes.c_int, _p]),
        ("perf_buffer__new_raw", _p, [ctypes.c_int, ctypes.c_size_t, _p, _p, _p, _p]),
        ("perf_buffer__buffer_cnt", ctypes.c_size_t, [_p]),
        ("perf_buffer__buffer", ctypes.c_int, [_p, ctypes.c_int, _p, _p]),
        ("perf_buffer__epoll_fd", ctypes.c_int, [_p]),
        ("perf_buffer__consume", ctypes.c_int, [_p]),
        ("perf_buffer__free", None, [_p]),
    ):
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


# libbpf prints to stderr by default: its messages are kept here instead, and written out when a load
# fails. Set before each load: bcc, on the same libbpf.so.1, sets its own.
_log: deque[str] = deque(maxlen=1000)
# The verifier's log, which libbpf asks for only when a load has failed (then it loads once more with
# logging on): it can run to megabytes, and its end says why. Kernels since 6.4 keep the end when
# it does not fit.
VERIFIER_LOG_BYTES = 1 << 20
_PRINT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, _p)
_libc = ctypes.CDLL(None)
_libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, _p]


@_PRINT
def _on_print(_level, fmt, args):
    # va_list is passed as a pointer on x86-64 and arm64 alike, so libc formats it.
    text = ctypes.create_string_buffer(4096)
    _libc.vsnprintf(text, len(text), fmt, args)
    _log.append(text.value.decode(errors="replace"))
    return 0


def _capture_log(lib: ctypes.CDLL) -> None:
    _log.clear()
    lib.libbpf_set_print(ctypes.cast(_on_print, _p))


def _strerror(lib: ctypes.CDLL, err: int) -> str:
    """Also libbpf's own codes (4000 and up: a malformed object, say)."""
    text = ctypes.create_string_buffer(256)
    lib.libbpf_strerror(err, text, len(text))
    return text.value.decode(errors="replace")


# The capabilities BPF needs here; sudo is the remedy for a user, not for root with a bounded set.
BPF_CAPABILITIES = "CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON"


def _error(what: str, err: int) -> CollectorError:
    if err in (errno.EPERM, errno.EACCES):
        if os.geteuid() == 0:
            return CollectorError(
                f"{what}: not permitted; BPF needs {BPF_CAPABILITIES}, which this root's capability "
                "bounding set leaves out (systemd: CapabilityBoundingSet=; a container: --cap-add)"
            )
        return CollectorError(f"{what}: not permitted; BPF needs root ({BPF_CAPABILITIES}): try sudo")
    return CollectorError(f"{what}: {os.strerror(err)}")


class BpfObject:
    """Some programs of one object file, opened, checked against the kernel, and loaded; owns its fds
    until close().

    Only `programs` are loaded: the verifier's pass over each is most of a start's CPU time. With
    `maps_of`, the maps are not made but shared with that object (another program of the same file
    loaded later, which libbpf cannot add to an object already loaded).
    """

    def __init__(self, path: str, programs: tuple[str, ...], maps_of: BpfObject | None = None) -> None:
        lib = library()
        self._lib = lib
        _capture_log(lib)
        obj = lib.bpf_object__open_file(os.fsencode(path), None)
        if not obj:
            raise CollectorError(
                f"cannot open the kernel program {path} ({_strerror(lib, ctypes.get_errno())}); reinstall addaddr"
            )
        self._obj = obj
        try:
            progs = {}
            for name in programs:
                progs[name] = lib.bpf_object__find_program_by_name(obj, name.encode())
                if not progs[name]:
                    raise CollectorError(f"{path} has no program {name}; reinstall addaddr")
            prog = lib.bpf_object__next_program(obj, None)
            while prog:
                if prog not in progs.values():
                    lib.bpf_program__set_autoload(prog, False)
                prog = lib.bpf_object__next_program(obj, prog)
            if maps_of is not None:
                self._reuse_maps(maps_of)
            self.features = _features(lib, obj, list(progs.values()))
            _check_kernel(lib, self.features)
            # One buffer each: libbpf loads every program asked for, and the one refused keeps its log.
            logs = [ctypes.create_string_buffer(VERIFIER_LOG_BYTES) for _ in progs]
            for prog, verifier_log in zip(progs.values(), logs):
                lib.bpf_program__set_log_buf(prog, verifier_log, VERIFIER_LOG_BYTES)
            err = lib.bpf_object__load(obj)
            if err:
                raise _load_error(path, -err, "".join(log.value.decode(errors="replace") for log in logs))
            self.program_fds: dict[str, int] = {name: lib.bpf_program__fd(prog) for name, prog in progs.items()}
        except BaseException:
            self.close()
            raise

    def _reuse_maps(self, other: BpfObject) -> None:
        bpf_map = self._lib.bpf_object__next_map(self._obj, None)
        while bpf_map:
            err = self._lib.bpf_map__reuse_fd(bpf_map, other.map_fd(self._lib.bpf_map__name(bpf_map).decode()))
            if err:
                raise _error("sharing the kernel program's maps", -err)
            bpf_map = self._lib.bpf_object__next_map(self._obj, bpf_map)

    def map_fd(self, name: str) -> int:
        """The fd of the object's map `name`; CollectorError when the program has none."""
        fd = self._lib.bpf_object__find_map_fd_by_name(self._obj, name.encode())
        if fd < 0:
            raise CollectorError(f"the kernel program has no map {name}; reinstall addaddr")
        return fd

    def close(self) -> None:
        """Closes the program and map fds: a filter attached by fd keeps its own reference."""
        if self._obj:
            self._lib.bpf_object__close(self._obj)
            self._obj = None


class Features:
    """What a program needs from the kernel: its type, its maps' types, the helpers it calls."""

    def __init__(self, prog_type: int, map_types: list[int], helpers: list[int]) -> None:
        self.prog_type = prog_type
        self.map_types = map_types
        self.helpers = helpers

    def __str__(self) -> str:
        maps = ", ".join(_map_name(t) for t in self.map_types)
        return f"{_prog_name(self.prog_type)} programs; maps: {maps}; helpers: " + ", ".join(
            _helper_name(h) for h in self.helpers
        )


def _prog_name(prog_type: int) -> str:
    return "SCHED_CLS" if prog_type == PROG_TYPE_SCHED_CLS else f"type {prog_type}"


def _map_name(map_type: int) -> str:
    return _MAP_TYPES.get(map_type, f"type {map_type}")


def _helper_name(helper: int) -> str:
    return f"bpf_{_HELPERS[helper]}" if helper in _HELPERS else f"helper {helper}"


def helpers_called(instructions: bytes) -> list[int]:
    """The helper ids a program's instructions call, in id order."""
    found = set()
    for i in range(0, len(instructions) - 7, 8):
        if instructions[i] == _CALL and instructions[i + 1] >> 4 == 0:
            found.add(int.from_bytes(instructions[i + 4 : i + 8], "little", signed=True))
    return sorted(found)


def _features(lib: ctypes.CDLL, obj: int, progs: list[int]) -> Features:
    """What the programs need together (they are of one type)."""
    map_types = []
    bpf_map = lib.bpf_object__next_map(obj, None)
    while bpf_map:
        map_types.append(lib.bpf_map__type(bpf_map))
        bpf_map = lib.bpf_object__next_map(obj, bpf_map)
    instructions = b"".join(
        ctypes.string_at(lib.bpf_program__insns(prog), lib.bpf_program__insn_cnt(prog) * 8) for prog in progs
    )
    return Features(lib.bpf_program__type(progs[0]), sorted(set(map_types)), helpers_called(instructions))


def _check_kernel(lib: ctypes.CDLL, features: Features) -> None:
    """Probes each feature with a tiny program of libbpf's: a clear refusal rather than a verifier dump."""
    prog = _prog_name(features.prog_type)
    probes = [(f"{prog} programs", lib.libbpf_probe_bpf_prog_type, (features.prog_type,))]
    probes += [(f"{_map_name(t)} maps", lib.libbpf_probe_bpf_map_type, (t,)) for t in features.map_types]
    probes += [
        (f"{_helper_name(h)} in {prog} programs", lib.libbpf_probe_bpf_helper, (features.prog_type, h))
        for h in features.helpers
    ]
    for what, probe, args in probes:
        ctypes.set_errno(0)
        result = probe(*args, None)
        # A probe refused for want of privilege says "unsupported" (0) and leaves EPERM behind.
        err = -result if result < 0 else ctypes.get_errno() if result == 0 else 0
        if err in (errno.EPERM, errno.EACCES) or result < 0:
            raise _error("probing the kernel's BPF features", err)
        if result == 0:
            raise CollectorError(
                f"kernel {os.uname().release} lacks {what}, which the kernel program needs; "
                "run addaddr on a newer kernel (tested on 6.1, 6.12 and 6.18: docs/kernels.md)"
            )


# How the verifier ends a refusal it would not make with CAP_PERFMON (or CAP_SYS_ADMIN): a root
# holding only CAP_BPF and CAP_NET_ADMIN, as containers are often given, passes every probe first.
_UNPRIVILEGED = "!root"


def _load_error(path: str, err: int, verifier_log: str) -> CollectorError:
    if err in (errno.EPERM, errno.EACCES) and (not verifier_log or _UNPRIVILEGED in verifier_log):
        return _error("loading the kernel program", errno.EPERM)
    fd, log_path = tempfile.mkstemp(prefix="addaddr-load-", suffix=".log")
    with os.fdopen(fd, "w") as log:
        log.writelines(_log)
        log.write(f"\n-- the verifier's log --\n{verifier_log}")
    return CollectorError(
        f"the kernel refused the kernel program {path} "
        f"({_reason(verifier_log) or os.strerror(err)}); libbpf's log and the verifier's "
        f"are in {log_path}"
    )


def _reason(verifier_log: str) -> str | None:
    """The verifier's last word: the line before its statistics ("processed N insns ...")."""
    lines = [line.strip() for line in verifier_log.splitlines() if line.strip()]
    for before, line in zip(lines, lines[1:]):
        if line.startswith("processed ") and " insns " in line:
            return before
    return lines[-1] if lines else None


def percpu_values(map_fd: int, key: int, value_type: type[ctypes.Structure]) -> list:
    """The value of `key` on each possible CPU. value_type's size must be a multiple of 8, as the
    kernel lays per-CPU values out 8-byte aligned."""
    lib = library()
    values = (value_type * lib.libbpf_num_possible_cpus())()
    k = ctypes.c_uint32(key)
    if lib.bpf_map_lookup_elem(map_fd, ctypes.byref(k), values) != 0:
        raise _error("reading the kernel program's counters", ctypes.get_errno())
    return list(values)


# What lets a perf buffer lock its pages, for whoever is refused them: root is not enough without
# CAP_IPC_LOCK (a bounded systemd unit or container), and sudo cannot help root.
LIFT_MEMLOCK = (
    "lift the locked-memory limit (ulimit -l unlimited; systemd: LimitMEMLOCK=infinity) or grant CAP_IPC_LOCK"
)
PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_BPF_OUTPUT = 10
PERF_SAMPLE_RAW = 1 << 10
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
# struct perf_event_mmap_page: the kernel's head, our tail, where the ring starts and its size.
_DATA_HEAD, _DATA_TAIL, _DATA_OFFSET, _DATA_SIZE = 1024, 1032, 1040, 1048


class PerfBuffer:
    """A perf event array's rings, one of `pages` pages per CPU (locked memory), opened by libbpf and
    read here straight from the mapped pages.

    `read` hands `on_records` everything each CPU's ring holds, copied out in one piece: whole perf
    records (struct perf_event_header first, 8-byte aligned), in the order that CPU wrote them. One
    call per CPU with records, not libbpf's callback per sample (several µs each through ctypes), so
    the records can be parsed many at once. A sample wakes `wait` only when `wakeup_events` are
    waiting (wakeups cost microseconds each).

    The positions are read and written as plain loads and stores, ordered as the kernel needs
    (the head before the records, the records before the tail) by x86-64's memory model. A weakly
    ordered CPU (arm64) needs barriers that Python cannot issue: there (`direct` false) libbpf
    reads the rings, with its barriers, and hands each record to a callback that copies it out;
    `on_records` gets the same bytes, a CPU's records at a time, at several µs a record.
    """

    def __init__(
        self,
        map_fd: int,
        pages: int,
        wakeup_events: int,
        on_records: Callable[[bytes], None],
        direct: bool | None = None,
    ) -> None:
        lib = library()
        self._lib = lib
        self._on_records = on_records
        self._direct = DIRECT_READ if direct is None else direct
        attr = _PerfEventAttr(
            type=PERF_TYPE_SOFTWARE,
            size=ctypes.sizeof(_PerfEventAttr),
            config=PERF_COUNT_SW_BPF_OUTPUT,
            sample_period=1,
            sample_type=PERF_SAMPLE_RAW,
            wakeup_events=wakeup_events,
        )
        # Read directly, libbpf's per-record callback is never called: nothing asks libbpf to read.
        self._copied: list[tuple[int, bytes]] = []
        self._record_fn = _NO_RECORD if self._direct else _RECORD_FN(self._copy_record)
        self._pb = lib.perf_buffer__new_raw(
            map_fd, pages, ctypes.byref(attr), ctypes.cast(self._record_fn, _p), None, None
        )
        if not self._pb:
            err = ctypes.get_errno()
            hint = f"; {LIFT_MEMLOCK}" if err in (errno.ENOMEM, errno.EPERM) else ""
            raise CollectorError(f"cannot open the perf buffer of {pages} pages per CPU ({os.strerror(err)}){hint}")
        self._rings = []
        base, size = _p(), ctypes.c_size_t()
        for index in range(lib.perf_buffer__buffer_cnt(self._pb)):
            if lib.perf_buffer__buffer(self._pb, index, ctypes.byref(base), ctypes.byref(size)) == 0:
                header = base.value
                u64 = ctypes.c_uint64.from_address
                self._rings.append(
                    (
                        u64(header + _DATA_HEAD),
                        u64(header + _DATA_TAIL),
                        header + u64(header + _DATA_OFFSET).value,
                        u64(header + _DATA_SIZE).value,
                    )
                )
        self._waiting = select.poll()
        self._waiting.register(lib.perf_buffer__epoll_fd(self._pb), select.POLLIN)

    def wait(self, timeout_ms: int) -> None:
        """Until a ring has `wakeup_events` samples waiting, or `timeout_ms`."""
        self._waiting.poll(timeout_ms)

    def read(self) -> None:
        """Hands over what every ring holds, without waiting."""
        if not self._direct:
            self._read_through_libbpf()
            return
        string_at = ctypes.string_at
        for head_at, tail_at, data, size in self._rings:
            head, tail = head_at.value, tail_at.value
            if head == tail:
                continue
            start, length = tail % size, head - tail
            if start + length <= size:
                records = string_at(data + start, length)
            else:  # wrapped around the ring's end
                records = string_at(data + start, size - start) + string_at(data, start + length - size)
            tail_at.value = head  # copied out: the kernel may write there again
            self._on_records(records)

    def _read_through_libbpf(self) -> None:
        if not self._pb:
            return
        # A signal handler run inside the callback would raise into ctypes, which drops the exception
        # and the record libbpf has already consumed: the signals wait until what was read is handed over.
        # Blocked here, one still reaches another thread of the process, and its Python handler then
        # runs in the main thread, inside the callback: the main thread's handlers only note it.
        # Python runs a pending handler after changing the mask, and it may raise: the mask as it was is
        # taken first, with nothing changed, so that it is always put back.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, ())
        handlers: dict[int, object] = {}
        noted: list[int] = []
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
            _note_signals(handlers, noted)
            # Its only failure, a record it could not copy whole (no memory), leaves the ring unread
            # from there: read again next time, nothing lost. What it copied before is handed over.
            self._lib.perf_buffer__consume(self._pb)
            copied, self._copied = self._copied, []
            start = 0
            try:
                for end in range(1, len(copied) + 1):  # a CPU's records at a time, as the direct reader
                    if end == len(copied) or copied[end][0] != copied[start][0]:
                        group, start = copied[start:end], end
                        self._on_records(b"".join(record for _cpu, record in group))
            finally:
                # on_records raised: the CPUs' records not handed over yet wait for the next read, as
                # the rings the direct reader has not reached
                self._copied[:0] = copied[start:]
        finally:
            try:
                for signum, handler in handlers.items():
                    signal.signal(signum, handler)
                for signum in noted:
                    signal.raise_signal(signum)  # pending until unblocked: to the handler it was meant for
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def _copy_record(self, _ctx, cpu: int, header: int) -> int:
        # libbpf has made a record that wrapped the ring's end whole; its size is the header's third field.
        size = ctypes.c_uint16.from_address(header + 6).value
        self._copied.append((cpu, ctypes.string_at(header, size)))
        return LIBBPF_PERF_EVENT_CONT

    def close(self) -> None:
        """Frees the perf buffer and unmaps its rings; safe to call twice."""
        if self._pb:
            self._rings = []  # their pages are unmapped now: a later read finds nothing to read
            self._lib.perf_buffer__free(self._pb)
            self._pb = None


class _PerfEventAttr(ctypes.Structure):
    # struct perf_event_attr up to config1: PERF_ATTR_SIZE_VER0, which every kernel accepts.
    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("wakeup_events", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),
    ]


LIBBPF_PERF_EVENT_CONT = -2
# Plain loads and stores order a ring's positions only under x86-64's memory model (PerfBuffer).
DIRECT_READ = platform.machine() in ("x86_64", "AMD64")
# What stops a run or a replay (collector/live/signals.py): held while libbpf calls back into Python.
_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _note_signals(handlers: dict[int, object], noted: list[int]) -> None:
    """In the main thread, the only one that runs Python's handlers: handlers of the held signals that
    note in `noted` which came, each handler they replace put in `handlers` as soon as it is (a handler
    not set from Python: the default)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _HELD_SIGNALS:
        handler = signal.signal(signum, lambda signum, _frame: noted.append(signum))
        handlers[signum] = signal.SIG_DFL if handler is None else handler


# enum bpf_perf_event_ret (*perf_buffer_event_fn)(void *ctx, int cpu, struct perf_event_header *event)
_RECORD_FN = ctypes.CFUNCTYPE(ctypes.c_int, _p, ctypes.c_int, _p)


@_RECORD_FN
def _NO_RECORD(_ctx, _cpu, _header):
    return LIBBPF_PERF_EVENT_CONT
