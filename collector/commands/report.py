# SPDX-License-Identifier: MIT
"""`addaddr report`: the study's figures over log directories, in one of the report formats."""

from pathlib import Path

from collector.commands import console
from collector.commands.export import require_fleet
from collector.commands.log_dirs import require_log_dirs
from collector.commands.skipped import Skipped
from collector.errors import CollectorError
from collector.fleet.rows import MANIFEST
from collector.report.figures import parse_time, report
from collector.report.formats import render


class BadTime(ValueError):
    """--since or --until does not parse: a usage error."""


def report_time(option: str, text: str | None) -> float | None:
    """`text`, given to `option` (--since or --until), as epoch seconds; None when not given, BadTime
    when it does not parse."""
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as problem:
        raise BadTime(f"{option}: {problem}") from None


def report_logs(
    log_dirs: tuple[str, ...],
    since: float | None,
    until: float | None,
    form: str,
    plot: str | None,
    parquet: str | None = None,
) -> int:
    """What is skipped (damaged, of the wrong shape, not a log) is named on stderr, the rest counted
    (exit status 1). With `parquet`, the figures come from that export's dataset instead of the logs."""
    # Before the logs are read, which can take minutes: a missing matplotlib or directory fails now.
    share_plot = None
    if plot is not None:
        from collector.report.plot import SharePlot

        share_plot = SharePlot(plot)
    if parquet is not None:
        figures = parquet_figures(parquet, since, until)
        console.data(render(figures, form))
        if share_plot is not None:
            share_plot.save(figures)
        return console.EXIT_OK
    require_log_dirs(log_dirs)

    skipped = Skipped()
    figures = report(log_dirs, since=since, until=until, on_damage=skipped)
    console.data(render(figures, form))
    if share_plot is not None:
        share_plot.save(figures)
    return skipped.status()


def parquet_figures(dataset: str, since: float | None, until: float | None) -> dict:
    """The report's figures from the dataset of an export (`--parquet`), by DuckDB; CollectorError when
    `dataset` is not one or the `fleet` extra is missing."""
    if not Path(dataset, MANIFEST).is_file():
        raise CollectorError(f"--parquet {dataset}: no {MANIFEST} there; give the --to of `addaddr export`")
    require_fleet("duckdb")
    from collector.fleet.study import duckdb_report

    return duckdb_report(dataset, since, until)
