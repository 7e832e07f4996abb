# SPDX-License-Identifier: MIT
"""collector.live.metrics: what a scrape of /metrics says, read back by prometheus_client's parsers, in the
Prometheus text format and in OpenMetrics, gzipped or not, HEAD, label escaping, where the server may
listen, 404s, a port freed by stop(); tests/live/test_served_metrics.py has those of a live run."""

from __future__ import annotations

import gzip
import socket
import urllib.error
import urllib.request

import pytest

from collector.errors import CollectorError
from collector.live.metrics import MetricsServer, parse_listen
from tests.support.scrapes import OPENMETRICS, PLAIN, parse

KERNEL = {
    "packets": 1000,
    "not_tcp": 10,
    "fragments": 1,
    "unparsed": 2,
    "tcp": 987,
    "mptcp": 400,
    "malformed_options": 3,
    "events": 120,
    "event_errors": 4,
    **{f"subtype_{n}": 100 + n for n in range(16)},
}
TRACKER = {
    "connections_tracked": 5,
    "subflows_tracked": 9,
    "connections": 40,
    "attempts": 6,
    "evictions": 2,
    "bogus_joins": 1,
    "malformed": 7,
}
FIGURES = {
    "kernel": KERNEL,
    "tracker": TRACKER,
    "events": 116,
    "lost": 4,
    "unwritten": 0,
    "announcements": {("ipv4", "private"): 30, ("ipv4", "global"): 8, ("ipv6", "6to4"): 2},
    "interface_changes": {"gone": 2},
}

# What a scrape of FIGURES must say: (name, labels) -> value, written out by hand.
WANT = {
    ("addaddr_kernel_packets_total", ()): 1000,
    ("addaddr_kernel_not_tcp_total", ()): 10,
    ("addaddr_kernel_fragments_total", ()): 1,
    ("addaddr_kernel_unparsed_total", ()): 2,
    ("addaddr_kernel_tcp_total", ()): 987,
    ("addaddr_kernel_mptcp_total", ()): 400,
    ("addaddr_kernel_malformed_options_total", ()): 3,
    ("addaddr_kernel_events_total", ()): 120,
    ("addaddr_kernel_event_errors_total", ()): 4,
    **{
        ("addaddr_kernel_mptcp_options_total", (("name", name), ("subtype", str(n)))): 100 + n
        for n, name in enumerate(
            [
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
            ]
        )
    },
    ("addaddr_connections_tracked", ()): 5,
    ("addaddr_subflows_tracked", ()): 9,
    ("addaddr_connections_total", ()): 40,
    ("addaddr_attempts_total", ()): 6,
    ("addaddr_evictions_total", ()): 2,
    ("addaddr_bogus_joins_total", ()): 1,
    ("addaddr_malformed_total", ()): 7,
    ("addaddr_events_total", ()): 116,
    ("addaddr_lost_events_total", ()): 4,
    ("addaddr_unwritten_records_total", ()): 0,
    ("addaddr_announcements_total", (("class", "private"), ("family", "ipv4"))): 30,
    ("addaddr_announcements_total", (("class", "global"), ("family", "ipv4"))): 8,
    ("addaddr_announcements_total", (("class", "6to4"), ("family", "ipv6"))): 2,
    ("addaddr_interface_changes_total", (("state", "gone"),)): 2,
    ("addaddr_interface_changes_total", (("state", "back"),)): 0,
}
GAUGES = {"addaddr_connections_tracked", "addaddr_subflows_tracked"}


def request(server: MetricsServer, path: str = "/metrics", method: str = "GET", **headers: str):
    host, port = server.address
    host = f"[{host}]" if ":" in host else host
    return urllib.request.urlopen(
        urllib.request.Request(f"http://{host}:{port}{path}", method=method, headers=headers), timeout=5
    )


def scrape(server: MetricsServer, path: str = "/metrics") -> tuple[str, str]:
    with request(server, path) as response:
        return response.headers["Content-Type"], response.read().decode()


@pytest.fixture
def serving():
    """A started MetricsServer on an ephemeral port of 127.0.0.1, serving FIGURES unless told otherwise."""
    servers = []

    def start(figures=lambda: FIGURES, host="127.0.0.1"):
        server = MetricsServer(figures, host, 0)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# --- scrapes --------------------------------------------------------------------------------------


def test_a_scrape_gives_every_figure_under_its_name(serving):
    content_type, text = scrape(serving())
    assert content_type == PLAIN
    samples, types = parse(text)
    assert samples == WANT
    assert {name for name, kind in types.items() if kind == "gauge"} == GAUGES
    assert all(name.endswith("_total") for name, kind in types.items() if kind == "counter")


@pytest.mark.parametrize("gzipped", [False, True], ids=["identity", "gzip"])
def test_openmetrics_is_served_to_who_asks_for_it(serving, gzipped):
    headers = {"Accept": f"{OPENMETRICS},text/plain;version=0.0.4;q=0.5"}
    if gzipped:
        headers["Accept-Encoding"] = "gzip"
    with request(serving(), **headers) as response:
        assert response.headers["Content-Type"].startswith(OPENMETRICS + ";"), response.headers["Content-Type"]
        assert response.headers["Content-Encoding"] == ("gzip" if gzipped else None)
        body = response.read()
    text = (gzip.decompress(body) if gzipped else body).decode()
    assert text.endswith("# EOF\n")
    samples, types = parse(text, openmetrics=True)
    assert samples == WANT
    assert {name for name, kind in types.items() if kind == "gauge"} == GAUGES


def test_the_text_format_is_gzipped_when_asked(serving):
    with request(serving(), **{"Accept-Encoding": "gzip"}) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert parse(gzip.decompress(response.read()).decode())[0] == WANT


def test_head_gives_the_headers_of_get_without_a_body(serving):
    server = serving()
    with request(server) as response:
        length = len(response.read())
    with request(server, method="HEAD") as head:
        assert head.status == 200 and head.read() == b""
        assert head.headers["Content-Type"] == PLAIN
        assert int(head.headers["Content-Length"]) == length


def test_every_scrape_asks_for_the_figures_afresh(serving):
    calls = []

    def figures():
        calls.append(None)
        return {**FIGURES, "events": len(calls)}

    server = serving(figures)
    assert [parse(scrape(server)[1])[0]["addaddr_events_total", ()] for _ in range(3)] == [1, 2, 3]
    assert len(calls) == 3, "want one call per scrape and none at start"


def test_a_counter_without_help_text_still_shows(serving):
    figures = {**FIGURES, "kernel": {**KERNEL, "new_thing": 3}, "tracker": {**TRACKER, "paths_tracked": 2}}
    samples, types = parse(scrape(serving(lambda: figures))[1])
    assert samples["addaddr_kernel_new_thing_total", ()] == 3 and types["addaddr_kernel_new_thing_total"] == "counter"
    assert samples["addaddr_paths_tracked", ()] == 2 and types["addaddr_paths_tracked"] == "gauge"


def test_label_values_are_escaped(serving):
    odd = 'a"b\\c\nd'
    figures = {**FIGURES, "announcements": {("ipv4", odd): 1}}
    text = scrape(serving(lambda: figures))[1]
    assert 'class="a\\"b\\\\c\\nd"' in text
    samples, _ = parse(text)
    assert samples["addaddr_announcements_total", (("class", odd), ("family", "ipv4"))] == 1


def test_no_announcements_yet_is_a_family_without_samples(serving):
    text = scrape(serving(lambda: {**FIGURES, "announcements": {}}))[1]
    assert "# TYPE addaddr_announcements_total counter\n" in text
    assert not any(name == "addaddr_announcements_total" for name, _ in parse(text)[0])


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("path", ["/", "/metric", "/metrics/", "/favicon.ico"])
def test_other_paths_are_not_found(serving, path, method):
    with pytest.raises(urllib.error.HTTPError) as error:
        request(serving(), path, method)
    assert error.value.code == 404
    assert error.value.read() == (b"" if method == "HEAD" else b"the metrics are at /metrics\n")


def test_other_methods_are_refused_as_the_library_does(serving):
    with pytest.raises(urllib.error.HTTPError) as error:
        request(serving(), method="POST")
    assert error.value.code == 405


def test_a_query_for_names_gives_those_only(serving):
    # prometheus_client's name[] filter, which federation and debugging use.
    samples = parse(scrape(serving(), "/metrics?name[]=addaddr_events_total&name[]=addaddr_connections_tracked")[1])[0]
    assert samples == {key: WANT[key] for key in (("addaddr_events_total", ()), ("addaddr_connections_tracked", ()))}


def test_ipv6_loopback_serves(serving):
    server = serving(host="::1")
    assert server.address[0] == "::1"
    assert parse(scrape(server)[1])[0] == WANT


def test_stop_frees_the_port():
    server = MetricsServer(lambda: FIGURES, "127.0.0.1", 0)
    server.start()
    port = server.address[1]
    scrape(server)
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with MetricsServer(lambda: FIGURES, "127.0.0.1", port) as again:
        assert again.address == ("127.0.0.1", port)
        assert parse(scrape(again)[1])[0] == WANT


def test_a_port_in_use_is_one_clear_error(serving):
    port = serving().address[1]
    with pytest.raises(CollectorError, match=f"cannot serve metrics on 127.0.0.1:{port}: Address already in use"):
        MetricsServer(lambda: FIGURES, "127.0.0.1", port).start()


# --- where to listen --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, want",
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("127.1.2.3:1", ("127.1.2.3", 1)),
        ("[::1]:9464", ("::1", 9464)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_loopback_addresses_are_accepted(text, want):
    assert parse_listen(text) == want


@pytest.mark.parametrize(
    "text, host",
    [
        ("0.0.0.0:9464", "0.0.0.0"),
        ("192.0.2.1:9464", "192.0.2.1"),
        ("[::]:9464", "::"),
        ("[2001:db8::1]:9464", "2001:db8::1"),
    ],
)
def test_other_addresses_need_allow_remote(text, host):
    with pytest.raises(CollectorError) as error:
        parse_listen(text)
    message = str(error.value)
    assert "\n" not in message and "--metrics-allow-remote" in message and "not a loopback" in message, message
    assert parse_listen(text, allow_remote=True) == (host, 9464)


@pytest.mark.parametrize(
    "text",
    [
        "9464",
        "127.0.0.1",
        "127.0.0.1:",
        ":9464",
        "::1:9464",
        "[::1]",
        "[::1]9464",
        "127.0.0.1:-1",
        "127.0.0.1:65536",
        "localhost:http",
        "127.0.0.1:9464 ",
    ],
)
def test_a_malformed_listen_address_says_the_form(text):
    with pytest.raises(CollectorError, match="give ADDRESS:PORT with a port from 0 \\(any free\\) to 65535"):
        parse_listen(text)


def test_a_name_that_does_not_resolve_is_one_clear_error():
    with pytest.raises(CollectorError, match="cannot resolve no-such-host.invalid"):
        parse_listen("no-such-host.invalid:9464")
