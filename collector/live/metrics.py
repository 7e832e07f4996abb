# SPDX-License-Identifier: MIT
"""`run --metrics ADDR:PORT`: the collector's figures at /metrics for Prometheus, through
prometheus_client: a custom collector turns the figures into metric families at each scrape, and the
library's WSGI app negotiates the format (Prometheus text, or OpenMetrics when the scraper asks) and
gzip. A daemon thread serves it.

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
afterwards: copies (dict(d) copies a dict in one step under the GIL) or figures taken at a tick. So
the collector pays nothing per event for its metrics: the library's own Counter objects, updated per
event under a lock, are not used.
Counter names are those of docs/records.md; one this module has no text for is still exposed, with
a generic HELP line, so a counter added to the kernel program or the tracker shows up at once.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.errors import CollectorError

PATH = "/metrics"
PREFIX = "addaddr_"

Figures = dict

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
_SUBTYPE_NAMES = (
    "MP_CAPABLE",
    "MP_JOIN",
    "DSS",
    "ADD_ADDR",
    "REMOVE_ADDR",
    "MP_PRIO",
    "MP_FAIL",
    "MP_FASTCLOSE",
    "MP_TCPRST",
    *["unassigned"] * 6,
    "private use",
)

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


# --- the metric families -------------------------------------------------------------------------


def families(figures: Figures) -> Iterator[Metric]:
    """The metric families of one figures dict (shape in the module docstring). Counters are named
    without `_total`: the library adds it to their samples."""
    subtypes = CounterMetricFamily(
        PREFIX + "kernel_mptcp_options", "MPTCP options seen, by subtype.", labels=("subtype", "name")
    )
    for counter, value in figures["kernel"].items():
        subtype = _SUBTYPE.fullmatch(counter)
        if subtype is not None:
            number = subtype.group(1)
            subtypes.add_metric((number, _SUBTYPE_NAMES[int(number)]), value)
        else:
            help_text = _KERNEL_HELP.get(counter, f"Kernel program counter {counter} (bpf/event.h).")
            yield CounterMetricFamily(f"{PREFIX}kernel_{counter}", help_text, value)
    yield subtypes
    for counter, value in figures["tracker"].items():
        help_text = _TRACKER_HELP.get(counter, f"Connection state counter {counter}.")
        kind = GaugeMetricFamily if counter.endswith(_TRACKED) else CounterMetricFamily
        yield kind(PREFIX + counter, help_text, value)
    yield CounterMetricFamily(PREFIX + "events", "Events read from the perf buffer.", figures["events"])
    yield CounterMetricFamily(
        PREFIX + "lost_events",
        "Events lost because the collector fell behind: the larger of the perf buffer's lost "
        "count and the kernel program's event_errors (each sees the same loss).",
        figures["lost"],
    )
    yield CounterMetricFamily(
        PREFIX + "unwritten_records", "Records that could not be written to the log.", figures["unwritten"]
    )
    announcements = CounterMetricFamily(
        PREFIX + "announcements",
        "ADD_ADDR announcements (echoes excluded) by family and class of the announced address.",
        labels=("family", "class"),
    )
    for (family, address_class), value in sorted(figures["announcements"].items()):
        announcements.add_metric((family, address_class), value)
    yield announcements
    changes = CounterMetricFamily(
        PREFIX + "interface_changes",
        "Watched interfaces that disappeared (state gone) and came back, watched again (state back).",
        labels=("state",),
    )
    for state in ("gone", "back"):
        changes.add_metric((state,), figures["interface_changes"].get(state, 0))
    yield changes


class _Figures(Collector):
    """A registry's only collector: the figures of the moment, read once per scrape."""

    def __init__(self, figures: Callable[[], Figures]) -> None:
        self._figures = figures

    def collect(self) -> Iterator[Metric]:
        return families(self._figures())


def app(figures: Callable[[], Figures]) -> Callable:
    """The WSGI app: the library's exposition at PATH, for GET and HEAD; 404 elsewhere."""
    # Not described at registration (that would call figures() once more), so registered as a collector
    # "without names": the library's name[] filter then still asks it.
    registry = CollectorRegistry(support_collectors_without_names=True)
    registry.register(_Figures(figures))
    library = make_wsgi_app(registry)

    def serve(environ: dict, start_response: Callable) -> list[bytes]:
        if environ["PATH_INFO"] != PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [] if environ["REQUEST_METHOD"] == "HEAD" else [f"the metrics are at {PATH}\n".encode()]
        if environ["REQUEST_METHOD"] == "HEAD":
            return _head(library, environ, start_response)
        return library(environ, start_response)

    return serve


def _head(library: Callable, environ: dict, start_response: Callable) -> list[bytes]:
    """The library answers HEAD with 405: its GET's status and headers instead, without the body."""
    got = {}

    def keep(status: str, headers: list, exc_info=None) -> None:
        got.update(status=status, headers=headers)

    body = b"".join(library({**environ, "REQUEST_METHOD": "GET"}, keep))
    start_response(got["status"], [*got["headers"], ("Content-Length", str(len(body)))])
    return []


# --- where to listen -----------------------------------------------------------------------------


def parse_listen(text: str, *, allow_remote: bool = False) -> tuple[str, int]:
    """(host, port) of `127.0.0.1:9464`, `[::1]:9464` or `localhost:9464`; CollectorError otherwise.

    The metrics have no authentication: an address that is not loopback (a name must resolve to
    loopback addresses only) is refused unless `allow_remote`.
    """
    match = _LISTEN.fullmatch(text)
    # Port 0 asks for any free port; `run` prints the one it got.
    if match is None or not 0 <= int(match.group(3)) < 65536:
        raise CollectorError(
            f"--metrics {text}: give ADDRESS:PORT with a port from 0 (any free) to 65535, as in "
            f"127.0.0.1:9464, [::1]:9464 or localhost:9464"
        )
    host, port = match.group(1) or match.group(2), int(match.group(3))
    if not allow_remote and not _is_loopback(host, port):
        raise CollectorError(
            f"--metrics {text}: {host} is not a loopback address, and the metrics have no "
            f"authentication; listen on 127.0.0.1, [::1] or localhost, or add "
            f"--metrics-allow-remote to serve them to the network"
        )
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


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:
        pass  # a line per scrape would bury the collector's status lines on stderr


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a stuck scraper must not hold up the collector's exit

    def __init__(self, sockaddr: tuple, family: int, application: Callable) -> None:
        self.address_family = family  # read by TCPServer.__init__ when it makes the socket
        super().__init__(sockaddr, _Handler)
        self.set_app(application)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also looks up the host's FQDN, a DNS query that can hang where DNS
        # is unreachable: the WSGI environment gets the address instead.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
        self.setup_environ()


class MetricsServer:
    """Serves the metrics of figures() at http://host:port/metrics from a daemon thread, between
    start() and stop(); also a context manager. Port 0 takes a free port: `address` says which."""

    # stop() waits up to this long for the serving loop to notice.
    POLL_SECONDS = 0.1

    def __init__(self, figures: Callable[[], Figures], host: str, port: int) -> None:
        self._app = app(figures)
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) listened on, once started."""
        return self._server.server_address[:2]

    def start(self) -> None:
        """Serves from a daemon thread on the first of the host's addresses that binds; CollectorError when
        none does."""
        error: OSError | None = None
        # A name may resolve to several addresses (localhost: 127.0.0.1 and ::1): the first that binds.
        for family, _, _, _, sockaddr in _resolve(self._host, self._port):
            try:
                self._server = _Server(sockaddr, family, self._app)
                break
            except OSError as exc:
                error = exc
        else:
            raise CollectorError(f"cannot serve metrics on {self._host}:{self._port}: {error.strerror}")
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(self.POLL_SECONDS,), name="metrics", daemon=True
        )
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
