# SPDX-License-Identifier: MIT
"""The `addaddr` command line: click options over collector.commands, one module per command.

Data goes to stdout, messages to stderr as one line `addaddr: error: ...`. Exit codes: 0 when all went
well, 1 when some input could not be used (the rest is still printed), 2 for usage errors (click's).
Commands are imported when they run, so that `--help` and option errors answer at once.
"""

import sys
from functools import wraps

import click

from collector.commands import console
from collector.errors import CollectorError

DEFAULT_LOG_DIR = "/var/log/addaddr"
# collector.report.formats.FORMATS, spelled out so that loading the CLI does not load the report;
# tests/unit/test_report.py checks the two agree.
REPORT_FORMATS = ("table", "json", "csv", "markdown")
# collector.kernel.hook.MODES, spelled out for the same reason; tests/live/test_hook.py checks the two agree.
ATTACH_MODES = ("auto", "tcx", "clsact")


class _GivenPath(click.Path):
    """click.Path that refuses an empty value: "" is no path, and as a falsy string it read as the option
    not given (`--anonymize-key "$KEY"` with KEY unset exported real addresses) or as "." (the current
    directory got the logs or the dataset)."""

    def convert(self, value, param, ctx):
        if value == "":
            self.fail("is empty: give a path (an unset shell variable?)", param, ctx)
        return super().convert(value, param, ctx)


json_option = click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
log_dir_option = click.option(
    "--log-dir",
    default=DEFAULT_LOG_DIR,
    show_default=True,
    type=_GivenPath(file_okay=False),
    help="Directory of the msgpack logs.",
)
format_option = click.option(
    "--format",
    "form",
    type=click.Choice(REPORT_FORMATS),
    default="table",
    show_default=True,
    help="For people, programs, spreadsheets or papers.",
)
anonymize_option = click.option(
    "--anonymize-key",
    type=_GivenPath(dir_okay=False),
    metavar="FILE",
    help="Log prefix-preserving anonymized addresses, keyed by FILE (32 bytes; made, mode 0600, if absent). "
    "Classes are computed from the real addresses, so reports are unchanged.",
)


def _host(ctx, param, value):
    if value is not None and not value.strip():
        raise click.BadParameter("must not be empty (a connection is identified by host and token)")
    return value


def _netns(ctx, param, value):
    # A name in /run/netns, as `ip netns` makes them: a path would reach any file (../../proc/1/ns/net), and
    # "" or "." the directory itself.
    if value is not None and (not value or "/" in value or value in (".", "..")):
        raise click.BadParameter(f"{value!r} is not a namespace name: give one of `ip netns list`")
    return value


host_option = click.option(
    "--host",
    callback=_host,
    metavar="NAME",
    help="Host name written in the logs' header, which tells hosts' equal tokens apart in reports and "
    "exports (default: this machine's host name; give it in containers, whose name is random).",
)


def exits_with_status(command):
    """The command's status becomes the exit status; CollectorError one line on stderr and status 1."""

    @wraps(command)
    def wrapper(*args, **kwargs):
        try:
            status = command(*args, **kwargs)
        except CollectorError as problem:
            console.error(str(problem))
            status = console.EXIT_FAILED
        except BrokenPipeError:
            raise  # the reader of stdout went away: nothing to say to anyone
        except OSError as problem:
            # A path no check foresaw (a parent that is a file, a name too long): still one line.
            console.error(console.os_error(problem))
            status = console.EXIT_FAILED
        if status:
            sys.exit(status)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="addaddr", prog_name=console.PROG)
def main() -> None:
    """Watch MPTCP ADD_ADDR announcements and classify the announced addresses."""


@main.command("classify")
@click.argument("addresses", nargs=-1, required=True, metavar="ADDRESS...")
@json_option
@exits_with_status
def classify_command(addresses: tuple[str, ...], as_json: bool) -> int:
    """Classify each ADDRESS by the IANA special-purpose registries.

    Addresses that do not parse are reported on stderr after the others are printed, and the exit
    status is then 1.
    """
    from collector.commands.classify import classify_addresses

    return classify_addresses(addresses, as_json)


def _listen(ctx, param, value):
    if value is None:
        return None
    from collector.commands.run import listen_address

    try:
        return listen_address(value, ctx.params.get("metrics_allow_remote", False))
    except CollectorError as problem:
        raise click.BadParameter(str(problem)) from None


def _perf_pages(ctx, param, value):
    from collector.commands.run import PERF_PAGES, perf_pages_problem

    if value is None:
        return PERF_PAGES
    problem = perf_pages_problem(value)
    if problem is not None:
        raise click.BadParameter(problem)
    return value


@main.command("run")
@click.option(
    "--iface",
    "interfaces",
    multiple=True,
    required=True,
    metavar="IFACE",
    help="Interface whose ingress to watch; repeat for several.",
)
@click.option(
    "--netns", default=None, metavar="NAME", callback=_netns, help="Network namespace of the interfaces (ip netns)."
)
@log_dir_option
@anonymize_option
@host_option
@click.option(
    "--metrics-allow-remote",
    is_flag=True,
    is_eager=True,
    help="Let --metrics listen on an address other than loopback.",
)
@click.option(
    "--metrics",
    callback=_listen,
    metavar="ADDR:PORT",
    help="Serve Prometheus metrics at http://ADDR:PORT/metrics (loopback only by default).",
)
@click.option(
    "--perf-pages",
    type=click.IntRange(1),
    default=None,
    callback=_perf_pages,
    metavar="N",
    help="Perf buffer pages per CPU, a power of two (default 4096: 16 MiB per CPU).",
)
@click.option(
    "--user",
    metavar="NAME",
    help="Once attached, drop to user NAME with no capability left (like tcpdump -Z); the logs are handed to NAME.",
)
@click.option(
    "--attach",
    type=click.Choice(ATTACH_MODES),
    default="auto",
    show_default=True,
    help="tcx links the program first on the hook (Linux >= 6.6, beside Cilium; gone when we "
    "exit); clsact adds a filter; auto takes tcx where the kernel has it.",
)
@exits_with_status
def run_command(
    interfaces: tuple[str, ...],
    netns: str | None,
    log_dir: str,
    anonymize_key: str | None,
    host: str | None,
    metrics_allow_remote: bool,
    metrics: tuple[str, int] | None,
    perf_pages: int,
    user: str | None,
    attach: str,
) -> int:
    """Collect MPTCP announcements at the ingress of IFACE until SIGINT or SIGTERM."""
    from collector.commands.run import RunOptions, run_collector

    return run_collector(
        RunOptions(
            interfaces,
            netns,
            log_dir,
            anonymize_key=anonymize_key,
            metrics=metrics,
            user=user,
            perf_pages=perf_pages,
            host=host,
            attach=attach,
        )
    )


@main.command("tail")
@log_dir_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing records as they are written.")
@json_option
@exits_with_status
def tail_command(log_dir: str, follow: bool, as_json: bool) -> int:
    """Print the records of the logs in LOG_DIR, oldest first.

    What cannot be read (a damaged record, one of the wrong shape, an entry that is not a log file)
    is skipped and named on stderr, the rest printed, and the exit status is then 1.
    """
    from collector.commands.tail import tail

    return tail(log_dir, follow, as_json)


@main.command("report")
@click.option(
    "--log-dir",
    "log_dirs",
    multiple=True,
    default=(DEFAULT_LOG_DIR,),
    show_default=True,
    type=_GivenPath(file_okay=False),
    help="Directory of the msgpack logs; repeat to merge several hosts'.",
)
@click.option(
    "--since", metavar="TIME", help="Only records at or after TIME: ISO 8601 (naive is UTC) or epoch seconds."
)
@click.option("--until", metavar="TIME", help="Only records before TIME (same forms as --since).")
@format_option
@click.option(
    "--plot",
    type=_GivenPath(dir_okay=False),
    metavar="FILE.png",
    help="Also draw the class shares of announced addresses per family (needs matplotlib).",
)
@click.option(
    "--parquet",
    metavar="PATH",
    type=_GivenPath(file_okay=False),
    help="Read the dataset `addaddr export --to PATH` made, with DuckDB, instead of the logs "
    "(same figures; for a fleet's months of logs).",
)
@exits_with_status
def report_command(
    log_dirs: tuple[str, ...], since: str | None, until: str | None, form: str, plot: str | None, parquet: str | None
) -> int:
    """How many MPTCP connections announced addresses, and of which classes, over the logs of LOG_DIR.

    What cannot be read (a damaged record, one of the wrong shape, an entry that is not a log file)
    is skipped and named on stderr, the rest counted, and the exit status is then 1.
    """
    from collector.commands.report import BadTime, report_logs, report_time

    try:
        since_time, until_time = report_time("--since", since), report_time("--until", until)
    except BadTime as problem:
        console.error(str(problem))
        return console.EXIT_USAGE
    return report_logs(log_dirs, since_time, until_time, form, plot, parquet)


@main.command("replay")
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...", type=_GivenPath(dir_okay=False))
@click.option(
    "--log-dir",
    default="addaddr-replay",
    show_default=True,
    type=_GivenPath(file_okay=False),
    help="Directory for the logs, as `run` writes them.",
)
@anonymize_option
@host_option
@exits_with_status
def replay_command(captures: tuple[str, ...], log_dir: str, anonymize_key: str | None, host: str | None) -> int:
    """Run the packets of pcap/pcapng CAPTUREs through the kernel program into logs.

    The same program and logs as `run`, with the packets' own timestamps; read them with `addaddr
    report --log-dir`. A capture that cannot be read to its end keeps what was read, is named on
    stderr, and the exit status is then 1.
    """
    from collector.commands.replay import capture_bytes, replay_captures

    bar_stream = console.progress_stream()
    if bar_stream is None:
        return replay_captures(captures, log_dir, anonymize_key, host)
    with click.progressbar(length=capture_bytes(captures), label="replaying", file=bar_stream) as bar:
        return replay_captures(captures, log_dir, anonymize_key, host, lambda done: bar.update(done - bar.pos))


@main.command("export")
@click.option(
    "--log-dir",
    "log_dirs",
    multiple=True,
    required=True,
    type=_GivenPath(file_okay=False),
    metavar="DIR",
    help="Directory of the msgpack logs; repeat for several hosts'.",
)
@click.option(
    "--to",
    required=True,
    type=_GivenPath(),
    metavar="PATH",  # what else is there: export says
    help="The Parquet dataset's directory: made if absent, added to if an earlier export made it.",
)
@click.option("--since", metavar="TIME", help="Only records at or after TIME (as for report); fixed per dataset.")
@click.option("--until", metavar="TIME", help="Only records before TIME; fixed per dataset.")
@click.option(
    "--anonymize-key",
    type=_GivenPath(dir_okay=False),
    metavar="FILE",
    help="Anonymize the addresses as `run --anonymize-key FILE` does, for exports that leave the "
    "operator; fixed per dataset.",
)
@exits_with_status
def export_command(
    log_dirs: tuple[str, ...], to: str, since: str | None, until: str | None, anonymize_key: str | None
) -> int:
    """Export the logs of each DIR to a Parquet dataset at PATH: tables connections, announcements,
    events, lost and stats, partitioned by host and date (docs/records.md). Run it again (nightly) over
    the same directories and it adds only the records written since: none twice."""
    from collector.commands.export import export_bytes, export_logs
    from collector.commands.report import BadTime, report_time

    try:
        since_time, until_time = report_time("--since", since), report_time("--until", until)
    except BadTime as problem:
        console.error(str(problem))
        return console.EXIT_USAGE
    bar_stream = console.progress_stream()
    if bar_stream is None:
        return export_logs(log_dirs, to, since_time, until_time, anonymize_key)
    # Not a `with`: the bar must end its line before the summary, not after it.
    bar = click.progressbar(length=export_bytes(log_dirs, to), label="exporting", file=bar_stream)
    return export_logs(
        log_dirs, to, since_time, until_time, anonymize_key, lambda done: bar.update(done - bar.pos), bar.render_finish
    )


@main.command("demo")
@click.option(
    "--connections",
    default=50,
    show_default=True,
    type=click.IntRange(1, 2000),
    help="MPTCP connections per client and family.",
)
@click.option(
    "--keep-logs",
    type=_GivenPath(file_okay=False),
    metavar="DIR",
    help="Keep the collector's logs in DIR (default: a temporary directory, removed).",
)
@exits_with_status
def demo_command(connections: int, keep_logs: str | None) -> int:
    """Real MPTCP clients in network namespaces announce addresses of many classes; the collector
    watches the server's ingress; then the report. Needs root and an MPTCP kernel; about a minute."""
    from collector.commands.demo import run_demo

    return run_demo(connections, keep_logs)


# Twenty thousand packets a second is well inside what one collector drains without loss here.
DEFAULT_TRAFFIC_PPS = 20_000


@main.command("replay-traffic", hidden=True)
@click.argument("capture", type=_GivenPath(exists=True, dir_okay=False))
@click.option(
    "--pps",
    type=click.IntRange(1),
    default=DEFAULT_TRAFFIC_PPS,
    show_default=True,
    help="Packets per second tcpreplay sends.",
)
@click.option("--top-speed", is_flag=True, help="As fast as tcpreplay can (overrides --pps).")
@click.option(
    "--log-dir",
    type=_GivenPath(file_okay=False),
    metavar="DIR",
    help="Keep the collector's logs in DIR (default: a temporary directory, removed).",
)
@format_option
@exits_with_status
def replay_traffic_command(capture: str, pps: int, top_speed: bool, log_dir: str | None, form: str) -> int:
    """Replay CAPTURE with tcpreplay into a veth watched by `addaddr run`, then print its report
    (scripts/replay-traffic; for tests and benchmarks)."""
    from collector.commands.replay_traffic import replay_as_traffic

    return replay_as_traffic(capture, None if top_speed else pps, log_dir, form)


if __name__ == "__main__":
    main()
