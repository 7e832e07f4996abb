"""The `addaddr` command line: a thin layer over the collector modules.

Data goes to stdout, messages to stderr as one line `addaddr: error: ...`. Exit codes: 0 when all went
well, 1 when some input could not be used (the rest is still printed), 2 for usage errors (click's).
"""

import json
import mmap
import os
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


anonymize_option = click.option(
    "--anonymize-key", type=click.Path(dir_okay=False), metavar="FILE",
    help="Log prefix-preserving anonymized addresses, keyed by FILE (32 bytes; made, mode 0600, if absent). "
         "Classes are computed from the real addresses, so reports are unchanged.")


def _listen(ctx, param, value):
    if value is None:
        return None
    from collector.metrics import parse_listen

    try:
        return parse_listen(value, allow_remote=ctx.params.get("metrics_allow_remote", False))
    except CollectorError as error:
        raise click.BadParameter(str(error)) from None


@main.command("run")
@click.option("--iface", "interfaces", multiple=True, required=True, metavar="IFACE",
              help="Interface whose ingress to watch; repeat for several.")
@click.option("--netns", default=None, metavar="NAME", help="Network namespace of the interfaces (ip netns).")
@log_dir_option
@anonymize_option
@click.option("--metrics-allow-remote", is_flag=True, is_eager=True,
              help="Let --metrics listen on an address other than loopback.")
@click.option("--metrics", callback=_listen, metavar="ADDR:PORT",
              help="Serve Prometheus metrics at http://ADDR:PORT/metrics (loopback only by default).")
@click.option("--perf-pages", type=click.IntRange(1), default=None, metavar="N",
              help="Perf buffer pages per CPU, a power of two (default 4096: 16 MiB per CPU).")
@click.option("--user", metavar="NAME",
              help="Once attached, drop to user NAME with no capability left (like tcpdump -Z); the logs "
                   "are handed to NAME.")
@fails_cleanly
def run_command(interfaces: tuple[str, ...], netns: str | None, log_dir: str, anonymize_key: str | None,
                metrics_allow_remote: bool, metrics: tuple[str, int] | None, perf_pages: int | None,
                user: str | None) -> None:
    """Collect MPTCP announcements at the ingress of IFACE until SIGINT or SIGTERM."""
    from collector.live import MAX_PERF_PAGES, PERF_PAGES, RunOptions, run

    if perf_pages is not None and (perf_pages & (perf_pages - 1) or perf_pages > MAX_PERF_PAGES):
        raise click.BadParameter(f"{perf_pages} is not a power of two up to {MAX_PERF_PAGES} "
                                 f"({MAX_PERF_PAGES * mmap.PAGESIZE >> 20} MiB per CPU)", param_hint="--perf-pages")
    session = run(RunOptions(interfaces, netns, log_dir, anonymize_key=anonymize_key, metrics=metrics,
                             user=user, perf_pages=perf_pages or PERF_PAGES))
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


def _report_time(option: str, text: str | None) -> float | None:
    from collector.report import parse_time

    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as error:
        report_error(f"{option}: {error}")
        sys.exit(2)  # a usage error, as click's are


@main.command("report")
@click.option("--log-dir", "log_dirs", multiple=True, default=(DEFAULT_LOG_DIR,), show_default=True,
              type=click.Path(file_okay=False),
              help="Directory of the msgpack logs; repeat to merge several hosts'.")
@click.option("--since", metavar="TIME",
              help="Only records at or after TIME: ISO 8601 (naive is UTC) or epoch seconds.")
@click.option("--until", metavar="TIME", help="Only records before TIME (same forms as --since).")
# collector.report_format.FORMATS, spelled out so that loading the CLI does not load the report.
@click.option("--format", "form", type=click.Choice(("table", "json", "csv", "markdown")), default="table",
              show_default=True, help="For people, programs, spreadsheets or papers.")
@click.option("--plot", type=click.Path(dir_okay=False), metavar="FILE.png",
              help="Also draw the class shares of announced addresses per family (needs matplotlib).")
@fails_cleanly
def report_command(log_dirs: tuple[str, ...], since: str | None, until: str | None, form: str,
                   plot: str | None) -> None:
    """How many MPTCP connections announced addresses, and of which classes, over the logs of LOG_DIR.

    Damaged log files are reported on stderr, the records before the damage counted, and the exit
    status is then 1.
    """
    from collector.report import report
    from collector.report_format import render

    since_time, until_time = _report_time("--since", since), _report_time("--until", until)
    # Before the logs are read, which can take minutes: a missing matplotlib or directory fails now.
    share_plot = None
    if plot is not None:
        from collector.report_plot import SharePlot

        share_plot = SharePlot(plot)
    for log_dir in log_dirs:
        if not Path(log_dir).is_dir():
            raise CollectorError(f"no log directory {log_dir}; give the one `addaddr run` wrote to with --log-dir")

    damaged = []

    def on_damage(path, offset, reason) -> None:
        damaged.append(path)
        report_error(f"{path}: damaged from byte {offset} ({reason}); the records before it are counted")

    figures = report(log_dirs, since=since_time, until=until_time, on_damage=on_damage)
    click.echo(render(figures, form))
    if share_plot is not None:
        share_plot.save(figures)
    if damaged:
        sys.exit(EXIT_BAD_INPUT)


@main.command("replay")
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...", type=click.Path(dir_okay=False))
@click.option("--log-dir", default="addaddr-replay", show_default=True, type=click.Path(file_okay=False),
              help="Directory for the logs, as `run` writes them.")
@anonymize_option
@fails_cleanly
def replay_command(captures: tuple[str, ...], log_dir: str, anonymize_key: str | None) -> None:
    """Run the packets of pcap/pcapng CAPTUREs through the kernel program into logs.

    The same program and logs as `run`, with the packets' own timestamps; read them with `addaddr
    report --log-dir`. A capture that cannot be read to its end keeps what was read, is named on
    stderr, and the exit status is then 1.
    """
    from collector.replay import replay

    total = sum(Path(c).stat().st_size for c in captures if Path(c).is_file())
    if sys.stderr.isatty():
        with click.progressbar(length=total, label="replaying", file=sys.stderr) as bar:
            result = replay(list(captures), log_dir, lambda done: bar.update(done - bar.pos), anonymize_key)
    else:
        result = replay(list(captures), log_dir, anonymize_key=anonymize_key)
    session = result.session
    click.echo(f"{PROG}: {result.packets} packets, {session.events} events, {session.announcements} "
               f"announcements, {session.lost_samples} lost, {result.refused} refused; logs in {log_dir}", err=True)
    for error in result.errors:
        report_error(str(error))
    if result.errors:
        sys.exit(EXIT_BAD_INPUT)


@main.command("demo")
@click.option("--connections", default=50, show_default=True, type=click.IntRange(1, 2000),
              help="MPTCP connections per client and family.")
@click.option("--keep-logs", type=click.Path(file_okay=False), metavar="DIR",
              help="Keep the collector's logs in DIR (default: a temporary directory, removed).")
@fails_cleanly
def demo_command(connections: int, keep_logs: str | None) -> None:
    """Real MPTCP clients in network namespaces announce addresses of many classes; the collector
    watches the server's ingress; then the report. Needs root and an MPTCP kernel; about a minute."""
    from collector.demo import demo
    from collector.report_format import render

    if os.geteuid() != 0:
        raise CollectorError("addaddr demo needs root (namespaces, BPF): try sudo")
    result = demo(connections, keep_logs, lambda line: click.echo(f"{PROG}: {line}", err=True))
    click.echo(render(result.report, "table"))
    expected = result.expected
    click.echo(f"\nThe testbed made {expected['connections']} connections, "
               f"{expected['connections_announcing']} announcing, {expected['announced']} announcements "
               f"(IPv4 classes {_counts(expected['ipv4'])}; IPv6 classes {_counts(expected['ipv6'])}).")


def _counts(classes: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(classes.items(), key=lambda kv: -kv[1]))
