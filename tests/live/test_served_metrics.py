# SPDX-License-Identifier: MIT
"""A live `addaddr run --metrics`: what /metrics serves, in both formats, equals what the run logs."""

from __future__ import annotations

import gzip
import os
import re
import time
import urllib.request
from collections import Counter

import pytest

from collector.lab.testbed import Testbed
from collector.logs.reader import read_records
from tests.support.collector_process import ONE_CLIENT, Collector
from tests.support.scrapes import OPENMETRICS, parse

SETTLED_WITHIN = 15.0  # seconds for the published figures to reach what the traffic made


def scrape_url(url: str, **headers: str) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
        openmetrics = response.headers["Content-Type"].startswith(OPENMETRICS)
        body = response.read()
        if response.headers["Content-Encoding"] == "gzip":
            body = gzip.decompress(body)
        return parse(body.decode(), openmetrics)[0]


def announced(samples: dict) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["family"], dict(labels)["class"]): value
        for (name, labels), value in samples.items()
        if name == "addaddr_announcements_total"
    }


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="attaching filters needs root")
def test_a_live_run_serves_the_counts_it_logs(tmp_path, processes):
    with Testbed(ONE_CLIENT) as bed:
        collector = Collector(processes, bed, tmp_path, "--metrics", "127.0.0.1:0")
        try:
            url = next(
                re.search(r"metrics at (\S+)", line).group(1) for line in collector.started if "metrics at" in line
            )
            traffic = bed.drive(3)
            want = sum(c.announced for c in traffic.connections)
            # The figures are published once a second: wait until they hold every announcement and
            # stay the same over two publications.
            deadline, previous = time.monotonic() + SETTLED_WITHIN, None
            while True:
                plain = scrape_url(url)
                if sum(announced(plain).values()) == want and plain == previous:
                    break
                assert time.monotonic() < deadline, f"got {announced(plain)} after {SETTLED_WITHIN} s; want {want}"
                previous = plain
                time.sleep(1.1)
            openmetrics = scrape_url(url, Accept=OPENMETRICS, **{"Accept-Encoding": "gzip"})
        finally:
            assert collector.stop() == 0, collector.stderr
    assert traffic.connections and not traffic.failures, traffic.failures
    records = list(read_records(tmp_path))
    stats = records[-1]
    assert stats["kind"] == "stats"
    logged = Counter((r["family"], r["class"]) for r in records if r["kind"] == "add_addr" and not r["echo"])
    assert announced(plain) == dict(logged) and sum(logged.values()) == want
    # The log's last figures, taken after the scrapes: what only this run's traffic moves is equal.
    assert plain["addaddr_events_total", ()] == stats["events"]
    assert plain["addaddr_connections_total", ()] == stats["tracker"]["connections"] == len(traffic.connections)
    assert plain["addaddr_kernel_mptcp_total", ()] == stats["kernel"]["mptcp"]
    assert plain["addaddr_lost_events_total", ()] == stats["lost"] == 0
    adds = plain["addaddr_kernel_mptcp_options_total", (("name", "ADD_ADDR"), ("subtype", "3"))]
    assert adds == stats["kernel"]["subtype_3"] >= want
    # Gauges move with the state; the counters of both formats are the same figures.
    counters = {key: value for key, value in plain.items() if not key[0].endswith("_tracked")}
    assert {key: openmetrics[key] for key in counters} == counters
