# SPDX-License-Identifier: MIT
"""scripts/render-dashboard [--minutes N] [--out FILE]: a test run on the namespace testbed, scraped
by Debian's prometheus, and the Grafana dashboard's queries over it drawn into a PNG."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from collector.live.signals import unwinding

from .draw import draw
from .testrun import SCRAPE_SECONDS, TestRun

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/render-dashboard", description=__doc__)
    parser.add_argument("--minutes", type=float, default=4.0, help="length of the traffic (default 4)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--dashboard", type=Path, default=ROOT / "docs" / "grafana-dashboard.json")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("needs root: network namespaces, the kernel program")
    if shutil.which("prometheus") is None:
        parser.error("needs Debian's prometheus: apt-get install prometheus")

    def progress(text: str) -> None:
        print(f"render-dashboard: {text}", file=sys.stderr, flush=True)

    # SIGTERM and SIGHUP unwind like Ctrl-C: the collector and prometheus stop, the testbed goes.
    with unwinding(), TestRun() as run:
        progress(
            f"testbed {run.bed.name}, collector and prometheus ({run.prometheus}) up; traffic for {args.minutes} min"
        )
        start, end = run.traffic(args.minutes, progress)
        version = run.prometheus_version()
        note = (
            f"A rendering of the dashboard's PromQL queries, evaluated by Prometheus {version} over a "
            f"{(end - start) / 60:.1f}-minute test run on the namespace testbed and drawn with "
            f"matplotlib (scripts/render-dashboard): not Grafana itself."
        )
        counts = draw(args.dashboard, run.prometheus, start, end, SCRAPE_SECONDS, args.out, note)
    for title, count in counts.items():
        progress(f"{count:3d} series: {title}")
    progress(f"wrote {args.out}")


main()
