"""`run --metrics ADDR:PORT`: the collector's figures at /metrics, in the Prometheus text exposition
format (version 0.0.4), served over HTTP by a daemon thread.

The figures come from a callable the collector hands over, called once per scrape from a server
thread. It returns a dict of this shape, every value an int:

    {
        "kernel": {"packets": 9, ..., "subtype_3": 2, ...},  # CaptureProgram.counters()
        "tracker": {"connections_tracked": 1, ...},           # Recorder.counters()
        "events": 12,                                         # events read from the perf buffer
        "lost": 0,                                            # events lost: max(perf lost, event_errors)
        "unwritten": 0,                                       # records that could not be written
        "announcements": {("ipv4", "private"): 3, ...},       # non-echo add_addr records by (family, class)
        "interface_changes": {"gone": 1, "back": 1},          # watched interfaces that went and came back
    }

It runs outside the collector's thread, so it must hand back dicts that the collector does not change
afterwards: copies (dict(d) copies a dict in one step under the GIL) or figures taken at a tick.
Counter names are those of docs/records.md; one this module has no text for is still exposed, with
a generic HELP line, so a counter added to the kernel program or the tracker shows up at once.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from collector.errors import CollectorError

PATH = "/metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "addaddr_"

Figures = dict
Sample = tuple[dict[str, str], int]

_LISTEN = re.compile(r"(?:\[([^\]]+)\]|([^:\[\]]+)):(\d{1,5})", re.ASCII)

_KERNEL_HELP = {
    "packets": "Packets the hook saw.",
    "not_tcp": "Packets that are not TCP: ARP, UDP, ICMP, other EtherTypes or IPv6 next headers.",
    "fragments": "IPv4 or IPv6 non-first fragments, which have no TCP header to read.",
    "unparsed": "Packets whose headers are truncated or inconsistent.",
    "tcp": "TCP segments whose header was read.",
    "mptcp": "TCP segments carrying at least one MPTCP option.",
    "malformed_options": "TCP option areas the kernel program could not walk.",
    "events": "Events the kernel program handed to the perf buffer.",
    "event_errors": "Events the perf buffer refused because it was full: lost in the kernel.",
}
_SUBTYPE = re.compile(r"subtype_(\d+)")
# The 16 values of the 4-bit subtype field, as the IANA registry of RFC 8684 names them.
_SUBTYPE_NAMES = ("MP_CAPABLE", "MP_JOIN", "DSS", "ADD_ADDR", "REMOVE_ADDR", "MP_PRIO", "MP_FAIL",
                  "MP_FASTCLOSE", "MP_TCPRST", *["unassigned"] * 6, "private use")

# A counter named *_tracked is a level (what the state holds now); the others only grow.
_TRACKED = "_tracked"
_TRACKER_HELP = {
    "connections_tracked": "Connections in the connection state now.",
    "subflows_tracked": "Subflows in the connection state now.",
    "connections": "Connections whose MP_CAPABLE exchange completed.",
    "attempts": "Initial subflows that left before their MP_CAPABLE exchange completed.",
    "evictions": "Subflows evicted because the connection state was full.",
    "bogus_joins": "MP_JOIN SYNs whose token named no tracked connection.",
    "malformed": "MPTCP options that did not decode (malformed records).",
}


# --- the exposition text -------------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(lines: list[str], name: str, kind: str, help_text: str, samples: list[Sample]) -> None:
    """One metric family: HELP and TYPE, then its samples, all together as the format requires."""
    name = PREFIX + name
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        label_text = ",".join(f'{key}="{_escape(text)}"' for key, text in labels.items())
        lines.append(f"{name}{{{label_text}}} {value}" if labels else f"{name} {value}")


def render(figures: Figures) -> str:
    """The exposition text of one figures dict (shape in the module docstring)."""
    lines: list[str] = []
    subtypes: list[Sample] = []
    for counter, value in figures["kernel"].items():
        subtype = _SUBTYPE.fullmatch(counter)
        if subtype is not None:
            number = subtype.group(1)
            subtypes.append(({"subtype": number, "name": _SUBTYPE_NAMES[int(number)]}, value))
        else:
            help_text = _KERNEL_HELP.get(counter, f"Kernel program counter {counter} (bpf/event.h).")
            _family(lines, f"kernel_{counter}_total", "counter", help_text, [({}, value)])
    _family(lines, "kernel_mptcp_options_total", "counter", "MPTCP options seen, by subtype.", subtypes)
    for counter, value in figures["tracker"].items():
        help_text = _TRACKER_HELP.get(counter, f"Connection state counter {counter}.")
        if counter.endswith(_TRACKED):
            _family(lines, counter, "gauge", help_text, [({}, value)])
        else:
            _family(lines, f"{counter}_total", "counter", help_text, [({}, value)])
    _family(lines, "events_total", "counter", "Events read from the perf buffer.", [({}, figures["events"])])
    _family(lines, "lost_events_total", "counter",
            "Events lost because the collector fell behind: the larger of the perf buffer's lost count "
            "and the kernel program's event_errors (each sees the same loss).", [({}, figures["lost"])])
    _family(lines, "unwritten_records_total", "counter", "Records that could not be written to the log.",
            [({}, figures["unwritten"])])
    _family(lines, "announcements_total", "counter",
            "ADD_ADDR announcements (echoes excluded) by family and class of the announced address.",
            [({"family": family, "class": address_class}, value)
             for (family, address_class), value in sorted(figures["announcements"].items())])
    _family(lines, "interface_changes_total", "counter",
            "Watched interfaces that disappeared (state gone) and came back, watched again (state back).",
            [({"state": state}, figures["interface_changes"].get(state, 0)) for state in ("gone", "back")])
    return "\n".join(lines) + "\n"


# --- where to listen -----------------------------------------------------------------------------


def parse_listen(text: str, *, allow_remote: bool = False) -> tuple[str, int]:
    """(host, port) of `127.0.0.1:9464`, `[::1]:9464` or `localhost:9464`; CollectorError otherwise.

    The metrics have no authentication: an address that is not loopback (a name must resolve to
    loopback addresses only) is refused unless `allow_remote`.
    """
    match = _LISTEN.fullmatch(text)
    # Port 0 asks for any free port; `run` prints the one it got.
    if match is None or not 0 <= int(match.group(3)) < 65536:
        raise CollectorError(f"--metrics {text}: give ADDRESS:PORT with a port from 0 (any free) to 65535, as in "
                             f"127.0.0.1:9464, [::1]:9464 or localhost:9464")
    host, port = match.group(1) or match.group(2), int(match.group(3))
    if not allow_remote and not _is_loopback(host, port):
        raise CollectorError(f"--metrics {text}: {host} is not a loopback address, and the metrics have no "
                             f"authentication; listen on 127.0.0.1, [::1] or localhost, or add "
                             f"--metrics-allow-remote to serve them to the network")
    return host, port


def _is_loopback(host: str, port: int) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass  # a name: what it resolves to decides
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in _resolve(host, port))


def _resolve(host: str, port: int) -> list[tuple]:
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CollectorError(f"--metrics: cannot resolve {host}: {exc.strerror}") from None


# --- the server ----------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if urlsplit(self.path).path != PATH:
            self.send_error(404, f"the metrics are at {PATH}")
            return
        body = render(self.server.figures()).encode()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        pass  # a line per scrape would bury the collector's status lines on stderr


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck scraper must not hold up the collector's exit

    def __init__(self, sockaddr: tuple, family: int, figures: Callable[[], Figures]) -> None:
        self.address_family = family  # read by TCPServer.__init__ when it makes the socket
        self.figures = figures
        super().__init__(sockaddr, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also looks up the host's FQDN, a DNS query that can hang where DNS
        # is unreachable; the handler does not use it.
        socketserver.TCPServer.server_bind(self)


class MetricsServer:
    """Serves render(figures()) at http://host:port/metrics from a daemon thread, between start() and
    stop(); also a context manager. Port 0 takes a free port: `address` says which."""

    # stop() waits up to this long for the serving loop to notice.
    POLL_SECONDS = 0.1

    def __init__(self, figures: Callable[[], Figures], host: str, port: int) -> None:
        self._figures = figures
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) listened on, once started."""
        return self._server.server_address[:2]

    def start(self) -> None:
        error: OSError | None = None
        # A name may resolve to several addresses (localhost: 127.0.0.1 and ::1): the first that binds.
        for family, _, _, _, sockaddr in _resolve(self._host, self._port):
            try:
                self._server = _Server(sockaddr, family, self._figures)
                break
            except OSError as exc:
                error = exc
        else:
            raise CollectorError(f"cannot serve metrics on {self._host}:{self._port}: {error.strerror}")
        self._thread = threading.Thread(target=self._server.serve_forever, args=(self.POLL_SECONDS,),
                                         name="metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops serving and closes the listening socket, so the port is free again."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
