# SPDX-License-Identifier: MIT
"""`addaddr run`: collect at the ingress of interfaces until SIGINT or SIGTERM."""

from collector.commands import console
from collector.live.run import PERF_PAGES, RunOptions, perf_pages_problem, run
from collector.pipeline.session import hold_collections, map_large_blocks

# The command line checks its options with these, and reaches the library only through commands/.
__all__ = ["PERF_PAGES", "RunOptions", "listen_address", "perf_pages_problem", "run_collector"]


def listen_address(text: str, allow_remote: bool) -> tuple[str, int]:
    """`--metrics ADDR:PORT` as (host, port); CollectorError saying what is wrong with it."""
    # Imported here: prometheus_client, which the metrics module loads, costs a run without --metrics
    # ~0.1 s of CPU.
    from collector.live.metrics import parse_listen

    return parse_listen(text, allow_remote=allow_remote)


def run_collector(options: RunOptions) -> int:
    """Exit 1 when the run ended by itself (its namespace deleted), its final records written."""
    hold_collections()
    map_large_blocks()
    session = run(options, console.message)
    console.message(
        f"stopped: {session.events} events, {session.announcements} announcements, {session.lost_samples} lost"
    )
    if session.ended is not None:
        console.error(f"{session.ended}; the final stats are in {options.log_dir}")
        return console.EXIT_FAILED
    return console.EXIT_OK
