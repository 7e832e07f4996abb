# SPDX-License-Identifier: MIT
"""The kernel program: the object built ahead from bpf/ (scripts/build-bpf), its counters and its
event stream.

Loaded through libbpf (collector/kernel/libbpf.py): no compiler and no kernel headers at run time. With
ADDADDR_COMPILE=1, bcc compiles bpf/ at load time instead, for whoever edits bpf/ and has not rebuilt
the object; everything after the load is the same code for both.
"""

from __future__ import annotations

import ctypes
import mmap
import os
from collections.abc import Callable
from pathlib import Path

from collector.errors import CollectorError
from collector.kernel.event import OptionEvent, PerfRecords
from collector.kernel.libbpf import PROG_TYPE_SCHED_CLS, BpfObject, Features, PerfBuffer, helpers_called, percpu_values

# Package data: the sources and the object (a link to the checkout's bpf/, copied into wheels).
BPF_DIR = Path(__file__).resolve().parent / "bpf"
SOURCE = BPF_DIR / "addaddr.c"
OBJECT = BPF_DIR / "addaddr.bpf.o"
FUNCTION = "addaddr_ingress"
# The same code for devices whose packets start at the IP header (tun, WireGuard, ip tunnels).
RAW_IP_FUNCTION = "addaddr_raw_ip"
COMPILE_ENV = "ADDADDR_COMPILE"
# Per CPU, a power of two: 256 pages (1 MiB) absorb bursts of ~10,000 events between polls.
DEFAULT_PAGES = 256
MPTCP_SUBTYPES = 16


class CaptureCounters(ctypes.Structure):
    """struct capture_counters of bpf/event.h (tests/kernel/test_prebuilt.py checks they agree)."""

    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "packets",
            "not_tcp",
            "fragments",
            "unparsed",
            "tcp",
            "mptcp",
            "malformed_options",
            "events",
            "event_errors",
        )
    ] + [("subtypes", ctypes.c_uint64 * MPTCP_SUBTYPES)]


def compile_requested() -> bool:
    """Whether ADDADDR_COMPILE (set, and not 0) asks to build bpf/ with bcc instead of loading the object."""
    return os.environ.get(COMPILE_ENV, "") not in ("", "0")


class CaptureProgram:
    """Loads the SCHED_CLS program; owns its maps and perf buffer for the life of the object.

    The entry points for `ethernet` (True: devices with an Ethernet header, False: raw-IP ones) load
    at once, so that a refusal stops the start; any other the first time fd_for asks for it, sharing
    the maps. Each entry point costs the kernel's verifier a pass (most of a start's CPU time), and a
    command seldom needs both. `compile` (default: ADDADDR_COMPILE set) builds bpf/ with bcc instead
    of loading the object.
    """

    def __init__(self, compile: bool | None = None, ethernet: tuple[bool, ...] = (True,)) -> None:
        self._objects: list[BpfObject] = []
        self._bcc = None
        self._fds: dict[str, int] = {}
        self._perf: PerfBuffer | None = None
        if compile_requested() if compile is None else compile:
            self._compile()
        elif not OBJECT.is_file():
            raise CollectorError(
                f"the kernel program {OBJECT} is missing: reinstall addaddr, or in a checkout run scripts/build-bpf"
            )
        try:
            for has_ethernet in dict.fromkeys(ethernet):
                self.fd_for(has_ethernet)
        except BaseException:
            self.close()
            raise

    def _compile(self) -> None:
        try:
            import bcc  # the development path only: bcc brings LLVM and wants kernel headers
        except ImportError as exc:
            raise CollectorError(
                f"{COMPILE_ENV} is set but bcc is not importable ({exc}): run scripts/setup --test, "
                "or unset it to load the built object"
            ) from None
        try:
            # bcc resolves a relative src_file against the running script: the path is absolute.
            self._bcc = bcc.BPF(src_file=str(SOURCE), cflags=[f"-I{BPF_DIR}"])
        except Exception as exc:  # bcc raises bare Exception for compile and verifier failures
            raise _bcc_error(exc) from None
        counters, events = self._bcc["counters"], self._bcc["events"]
        self._counters_fd, self._events_fd = counters.map_fd, events.map_fd
        self._map_types = sorted(bcc.lib.bpf_table_type_id(self._bcc.module, t.map_id) for t in (counters, events))

    def _load(self, name: str) -> int:
        if self._bcc is not None:
            try:
                fd = self._bcc.load_func(name, self._bcc.SCHED_CLS).fd
            except Exception as exc:  # bcc raises bare Exception for verifier failures
                raise _bcc_error(exc) from None
            self.features = Features(
                PROG_TYPE_SCHED_CLS,
                self._map_types,
                helpers_called(b"".join(self._bcc.dump_func(n) for n in (*self._fds, name))),
            )
            return fd
        loaded = BpfObject(str(OBJECT), (name,), maps_of=self._objects[0] if self._objects else None)
        if not self._objects:
            self._counters_fd = loaded.map_fd("counters")
            self._events_fd = loaded.map_fd("events")
        self._objects.append(loaded)
        # Both entry points are the same code: they rely on the same features.
        self.features: Features = loaded.features
        return loaded.program_fds[name]

    @property
    def fd(self) -> int:
        """The program for devices with an Ethernet header."""
        return self.fd_for(ethernet=True)

    def fd_for(self, ethernet: bool) -> int:
        """The program for a device with an Ethernet header, or for one whose packets start at the IP
        header (both feed the same maps); loaded now if it was not yet."""
        name = FUNCTION if ethernet else RAW_IP_FUNCTION
        if name not in self._fds:
            self._fds[name] = self._load(name)
        return self._fds[name]

    def counters(self) -> dict[str, int]:
        """The per-CPU counters summed; subtypes keyed `subtype_N`."""
        total: dict[str, int] = {}
        for per_cpu in percpu_values(self._counters_fd, 0, CaptureCounters):
            for name, _ in CaptureCounters._fields_:
                value = getattr(per_cpu, name)
                if name == "subtypes":
                    for subtype, n in enumerate(value):
                        key = f"subtype_{subtype}"
                        total[key] = total.get(key, 0) + n
                else:
                    total[name] = total.get(name, 0) + value
        return total

    def open_events(
        self,
        on_events: Callable[[list[OptionEvent]], None],
        on_lost: Callable[[int], None],
        pages: int = DEFAULT_PAGES,
        wakeup_events: int = 1,
    ) -> None:
        """Route the events each CPU's perf buffer holds, a list at a time in the order that CPU wrote
        them, to on_events; lost counts to on_lost.

        Events the kernel writes before this call are dropped uncounted by the kernel: open before
        attaching.
        """

        parse = PerfRecords().parse

        def records(chunk: bytes) -> None:
            events, lost = parse(chunk)
            if events:
                on_events(events)
            if lost:
                on_lost(lost)

        self._perf = PerfBuffer(self._events_fd, pages, wakeup_events, records)

    def wait(self, timeout_ms: int) -> None:
        """Waits for a buffer to fill to its wakeup mark, or `timeout_ms`; `drain` then reads them."""
        self._perf.wait(timeout_ms)

    def drain(self) -> None:
        """Read whatever the buffers hold without waiting."""
        self._perf.read()

    def close(self) -> None:
        """Closes the perf buffer and the loaded programs and maps: a filter attached by fd keeps its own
        reference. Safe to call twice."""
        if self._perf is not None:
            self._perf.close()
            self._perf = None
        for loaded in self._objects:
            loaded.close()
        self._objects = []
        if self._bcc is not None:
            self._bcc.cleanup()
            self._bcc = None


def _bcc_error(exc: Exception) -> CollectorError:
    return CollectorError(
        f"bcc cannot compile or load {SOURCE} ({exc}); are /lib/modules/$(uname -r)/build "
        "headers present (scripts/setup --test links them) and are you root?"
    )


def locked_bytes(pages: int, cpus: int | None = None) -> int:
    """The memory a perf buffer of `pages` per CPU locks: a ring plus its header page on each online CPU
    (`cpus` of them, by default this host's)."""
    return (pages + 1) * mmap.PAGESIZE * (cpus or os.sysconf("SC_NPROCESSORS_ONLN"))
