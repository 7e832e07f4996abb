"""`addaddr report`: the study's figures over log directories, in one of the report formats."""

from collector.commands import console
from collector.commands.log_dirs import require_log_dirs
from collector.commands.skipped import Skipped
from collector.report import parse_time, report
from collector.report_format import render


class BadTime(ValueError):
    """--since or --until does not parse: a usage error."""


def report_time(option: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as problem:
        raise BadTime(f"{option}: {problem}") from None


def report_logs(log_dirs: tuple[str, ...], since: float | None, until: float | None, form: str,
                plot: str | None) -> int:
    """What is skipped (damaged, of the wrong shape, not a log) is named on stderr, the rest counted
    (exit status 1)."""
    # Before the logs are read, which can take minutes: a missing matplotlib or directory fails now.
    share_plot = None
    if plot is not None:
        from collector.report_plot import SharePlot

        share_plot = SharePlot(plot)
    require_log_dirs(log_dirs)

    skipped = Skipped()
    figures = report(log_dirs, since=since, until=until, on_damage=skipped)
    console.data(render(figures, form))
    if share_plot is not None:
        share_plot.save(figures)
    return skipped.status()
