"""`addaddr run`: collect at the ingress of interfaces until SIGINT or SIGTERM."""

from collector.commands import console
from collector.live.run import RunOptions, run
from collector.pipeline.session import hold_collections, map_large_blocks


def run_collector(options: RunOptions) -> int:
    """Exit 1 when the run ended by itself (its namespace deleted), its final records written."""
    hold_collections()
    map_large_blocks()
    session = run(options)
    console.message(f"stopped: {session.events} events, {session.announcements} announcements, "
                    f"{session.lost_samples} lost")
    if session.ended is not None:
        console.error(f"{session.ended}; the final stats are in {options.log_dir}")
        return console.EXIT_FAILED
    return console.EXIT_OK
