# SPDX-License-Identifier: MIT
"""scripts/bench [--quick] [--json FILE] [--only NAME ...]: runs the benchmarks, prints the table and
the Markdown `Performance` section for the README; a full run also writes it to docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from collector.live.signals import unwinding

from . import ROOT, anonymize, export, kernel, logs, memory, overhead, pipeline, replay, report, startup
from .measure import Result, markdown_table

BENCHMARKS = {
    module.__name__.rsplit(".", 1)[1]: module
    for module in (kernel, overhead, pipeline, replay, report, export, memory, logs, anonymize, startup)
}
LATEST = ROOT / "docs" / "benchmarks.md"


def performance_section(results: list[Result], command: str, seconds: float) -> str:
    machine = f"{os.cpu_count()} CPUs, Linux {platform.release()}"
    lines = [
        "## Performance",
        "",
        f"`{command}` on {datetime.now(UTC):%Y-%m-%d} ({machine}, a shared machine: medians of "
        f"repeated rounds, lowest–highest in brackets; ratios taken round by round), {seconds / 60:.1f} min:",
        "",
        markdown_table(results),
        "",
    ]
    for result in results:
        if result.notes:
            lines.append(f"- `{result.name}`: " + " ".join(result.notes))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller inputs and fewer rounds: under two minutes")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as one JSON object")
    parser.add_argument(
        "--only", nargs="+", choices=BENCHMARKS, metavar="NAME", help=f"run only these ({', '.join(BENCHMARKS)})"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("needs root: BPF programs, network namespaces")
    started = time.perf_counter()
    results = []
    # SIGTERM and SIGHUP unwind like Ctrl-C: the benchmarks' namespaces are removed on the way out.
    try:
        with unwinding():
            for name in args.only or BENCHMARKS:
                print(f"bench: {name}...", file=sys.stderr, flush=True)
                began = time.perf_counter()
                results.append(BENCHMARKS[name].run(args.quick))
                print(f"bench: {name} took {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        sys.exit("bench: interrupted; its namespaces are removed")
    command = (
        "scripts/bench" + (" --quick" if args.quick else "") + (f" --only {' '.join(args.only)}" if args.only else "")
    )
    section = performance_section(results, command, time.perf_counter() - started)
    if args.json:
        args.json.write_text(json.dumps({result.name: result.as_json() for result in results}, indent=2) + "\n")
    # Only a full run of everything stands for the README: quick figures are smaller inputs.
    if not args.quick and not args.only:
        LATEST.write_text(section)
    print(section)


main()
