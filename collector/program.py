"""The kernel program: compiled by bcc at load time from bpf/, its counters and its event stream."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .errors import CollectorError

BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"
SOURCE = BPF_DIR / "addaddr.c"
FUNCTION = "addaddr_ingress"
# The same code for devices whose packets start at the IP header (tun, WireGuard, ip tunnels).
RAW_IP_FUNCTION = "addaddr_raw_ip"
# Per CPU, a power of two: 256 pages (1 MiB) absorb bursts of ~10,000 events between polls.
DEFAULT_PAGES = 256


def _bcc():
    try:
        import bcc
    except ImportError as exc:
        raise CollectorError(
            f"bcc is not importable ({exc}): run scripts/setup, or install Debian's python3-bpfcc"
        ) from None
    return bcc


class CaptureProgram:
    """Compiles and loads the SCHED_CLS program; owns its maps for the life of the object."""

    def __init__(self) -> None:
        bcc = _bcc()
        try:
            # bcc resolves a relative src_file against the running script: the path is absolute.
            self.bpf = bcc.BPF(src_file=str(SOURCE), cflags=[f"-I{BPF_DIR}"])
            self.function = self.bpf.load_func(FUNCTION, bcc.BPF.SCHED_CLS)
        except Exception as exc:  # bcc raises bare Exception for compile and verifier failures
            raise CollectorError(
                f"cannot load the kernel program ({exc}); are /lib/modules/$(uname -r)/build "
                "headers present (scripts/setup links them) and are you root?"
            ) from None
        self.fd: int = self.function.fd
        self._raw_ip_fd: int | None = None
        self._counters = self.bpf["counters"]
        self._events = self.bpf["events"]

    def fd_for(self, ethernet: bool) -> int:
        """The program for a device with an Ethernet header, or for one whose packets start at the IP
        header; the second is verified only when first asked for. Both feed the same maps."""
        if ethernet:
            return self.fd
        if self._raw_ip_fd is None:
            try:
                self._raw_ip_fd = self.bpf.load_func(RAW_IP_FUNCTION, self.bpf.SCHED_CLS).fd
            except Exception as exc:  # bcc's bare Exception for a verifier refusal
                raise CollectorError(f"cannot load the kernel program for raw-IP devices ({exc})") from None
        return self._raw_ip_fd

    def counters(self) -> dict[str, int]:
        """The per-CPU counters summed; subtypes keyed `subtype_N`."""
        total: dict[str, int] = {}
        for per_cpu in self._counters.getvalue(self._counters.Key(0)):
            for name, _ in per_cpu._fields_:
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
        on_event: Callable[[object], None],
        on_lost: Callable[[int], None],
        pages: int = DEFAULT_PAGES,
        wakeup_events: int = 1,
    ) -> None:
        """Route each perf-buffer sample, as bcc's ctypes struct, to on_event; lost counts to on_lost.

        Events the kernel writes before this call are dropped uncounted by the kernel: open before
        attaching.
        """
        events = self._events

        def deliver(_cpu, data, _size):
            on_event(events.event(data))

        events.open_perf_buffer(deliver, page_cnt=pages, lost_cb=on_lost, wakeup_events=wakeup_events)

    def poll(self, timeout_ms: int) -> None:
        self.bpf.perf_buffer_poll(timeout=timeout_ms)

    def drain(self) -> None:
        """Read whatever the buffers hold without waiting."""
        self.bpf.perf_buffer_consume()

    def close(self) -> None:
        # Closed here, while the map is open: bcc would otherwise close them in __del__, after
        # cleanup() closed the map, and print a KeyError at exit.
        for cpu in list(self._events._open_key_fds):
            del self._events[cpu]
        self.bpf.cleanup()
