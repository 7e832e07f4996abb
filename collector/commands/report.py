"""`addaddr report`: the study's figures over log directories, in one of the report formats."""

from collector.commands import console
from collector.commands.log_dirs import require_log_dirs
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
    """Damaged log files are named on stderr, the records before the damage counted (exit status 1)."""
    # Before the logs are read, which can take minutes: a missing matplotlib or directory fails now.
    share_plot = None
    if plot is not None:
        from collector.report_plot import SharePlot

        share_plot = SharePlot(plot)
    require_log_dirs(log_dirs)

    damaged = []

    def on_damage(path, offset, reason) -> None:
        damaged.append(path)
        console.error(f"{path}: damaged from byte {offset} ({reason}); the records before it are counted")

    figures = report(log_dirs, since=since, until=until, on_damage=on_damage)
    console.data(render(figures, form))
    if share_plot is not None:
        share_plot.save(figures)
    return console.EXIT_BAD_INPUT if damaged else console.EXIT_OK
