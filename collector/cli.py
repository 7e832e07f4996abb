"""The `addaddr` command line: a thin layer over the collector modules.

Data goes to stdout, messages to stderr as one line `addaddr: error: ...`. Exit codes: 0 when all went
well, 1 when some input could not be used (the rest is still printed), 2 for usage errors (click's).
"""

import json
import sys
from collections.abc import Sequence
from functools import wraps
from pathlib import Path

import click

from collector.classify import Classification, classify
from collector.errors import CollectorError

PROG = "addaddr"
EXIT_BAD_INPUT = 1
EXIT_FAILED = 1
DEFAULT_LOG_DIR = "/var/log/addaddr"

json_option = click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
log_dir_option = click.option("--log-dir", default=DEFAULT_LOG_DIR, show_default=True,
                              type=click.Path(file_okay=False), help="Directory of the msgpack logs.")


def report_error(message: str) -> None:
    click.echo(f"{PROG}: error: {message}", err=True)


def fails_cleanly(command):
    """CollectorError becomes one line on stderr and exit status 1, not a traceback."""

    @wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except CollectorError as error:
            report_error(str(error))
            sys.exit(EXIT_FAILED)

    return wrapper


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(map(len, column)) for column in zip(header, *rows)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in (header, *rows)
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="addaddr", prog_name=PROG)
def main() -> None:
    """Watch MPTCP ADD_ADDR announcements and classify the announced addresses."""


CLASSIFY_HEADER = ("ADDRESS", "FAMILY", "CLASS", "GLOBAL", "EMBEDDED IPV4", "EMBEDDED CLASS", "EMBEDDED GLOBAL")


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _classify_row(c: Classification) -> tuple[str, ...]:
    e = c.embedded_ipv4
    embedded = ("-", "-", "-") if e is None else (e.address, e.address_class, _yes_no(e.is_global))
    return (c.address, c.family, c.address_class, _yes_no(c.is_global), *embedded)


@main.command("classify")
@click.argument("addresses", nargs=-1, required=True, metavar="ADDRESS...")
@json_option
def classify_command(addresses: tuple[str, ...], as_json: bool) -> None:
    """Classify each ADDRESS by the IANA special-purpose registries.

    Addresses that do not parse are reported on stderr after the others are printed, and the exit
    status is then 1.
    """
    classified, errors = [], []
    for address in addresses:
        try:
            classified.append(classify(address))
        except ValueError as error:
            errors.append(str(error))

    if as_json:
        for c in classified:
            click.echo(json.dumps(c.as_json()))
    elif classified:
        click.echo(render_table(CLASSIFY_HEADER, [_classify_row(c) for c in classified]))

    for message in errors:
        report_error(message)
    if errors:
        click.get_current_context().exit(EXIT_BAD_INPUT)


@main.command("run")
@click.option("--iface", "interfaces", multiple=True, required=True, metavar="IFACE",
              help="Interface whose ingress to watch; repeat for several.")
@click.option("--netns", default=None, metavar="NAME", help="Network namespace of the interfaces (ip netns).")
@log_dir_option
@fails_cleanly
def run_command(interfaces: tuple[str, ...], netns: str | None, log_dir: str) -> None:
    """Collect MPTCP announcements at the ingress of IFACE until SIGINT or SIGTERM."""
    from collector.live import RunOptions, run

    session = run(RunOptions(interfaces, netns, log_dir))
    click.echo(f"{PROG}: stopped: {session.events} events, {session.announcements} announcements, "
               f"{session.lost_samples} lost", err=True)


def _damage_to_stderr(path, offset, reason) -> None:
    report_error(f"{path}: damaged from byte {offset} ({reason}); the records before it are shown")


@main.command("tail")
@log_dir_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing records as they are written.")
@json_option
@fails_cleanly
def tail_command(log_dir: str, follow: bool, as_json: bool) -> None:
    """Print the records of the logs in LOG_DIR, oldest first."""
    from collector.logfile import follow as follow_log, read_records
    from collector.render import as_json as record_json, as_text

    if follow:
        records = follow_log(log_dir, on_damage=_damage_to_stderr)
    else:
        if not Path(log_dir).is_dir():
            raise CollectorError(f"no log directory {log_dir}; give the one `addaddr run` wrote to with --log-dir")
        records = read_records(log_dir, on_damage=_damage_to_stderr)
    try:
        for record in records:
            click.echo(json.dumps(record_json(record)) if as_json else as_text(record))
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        sys.stderr.close()  # `addaddr tail | head`: stop quietly
