"""`addaddr run`: collect at the ingress of interfaces until SIGINT or SIGTERM."""

from collector.commands import console
from collector.live import RunOptions, run


def run_collector(options: RunOptions) -> int:
    session = run(options)
    console.message(f"stopped: {session.events} events, {session.announcements} announcements, "
                    f"{session.lost_samples} lost")
    return console.EXIT_OK
