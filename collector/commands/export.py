# SPDX-License-Identifier: MIT
"""`addaddr export`: log directories to a Parquet dataset, adding only what earlier exports did not take."""

from collections.abc import Callable

from collector.commands import console
from collector.commands.log_dirs import require_log_dirs
from collector.commands.skipped import Skipped
from collector.errors import CollectorError

FLEET_EXTRA = "pip install 'addaddr[fleet]' (pyarrow and duckdb)"


def require_fleet(module: str) -> None:
    """The export and the Parquet report need the optional `fleet` dependencies: one line if absent."""
    try:
        __import__(module)
    except ImportError:
        raise CollectorError(f"this needs {module}: {FLEET_EXTRA}") from None


def export_bytes(log_dirs: tuple[str, ...], to: str) -> int:
    """The total a progress bar counts to: what the export has left to read."""
    require_log_dirs(log_dirs)
    from collector.fleet.export import pending_bytes

    return pending_bytes(log_dirs, to)


def export_logs(
    log_dirs: tuple[str, ...],
    to: str,
    since: float | None,
    until: float | None,
    anonymize_key: str | None,
    progress: Callable[[int], None] | None = None,
    progress_done: Callable[[], None] | None = None,
) -> int:
    """What the readers skip (damaged, of the wrong shape) is named on stderr, the rest exported (exit 1).
    `progress(bytes read)` as the export goes; `progress_done()` ends the bar's line, before any line
    of ours (a skipped file, an error, the summary) so that none is written into the bar."""
    require_log_dirs(log_dirs)
    require_fleet("pyarrow")
    from collector.fleet.export import export

    bar = _Bar(progress, progress_done)
    skipped = Skipped()

    def on_damage(path, offset: int, reason: str) -> None:
        bar.end_line()
        skipped(path, offset, reason)

    try:
        result = export(
            log_dirs,
            to,
            since=since,
            until=until,
            anonymize_key=anonymize_key,
            on_progress=progress and bar.progress,
            on_damage=on_damage,
        )
    finally:
        bar.end_line()
    for problem in result.problems:
        console.error(problem)
    rows = ", ".join(f"{count} {table}" for table, count in result.rows.items())
    console.message(
        f"{result.records} new records from {result.files_read} log files: {rows} rows; "
        f"{result.open_connections} connections still open; dataset in {to}"
    )
    return console.EXIT_BAD_INPUT if result.problems else skipped.status()


class _Bar:
    """A progress bar's line, ended once after each stretch of it drawn (ending it twice would leave an
    empty line)."""

    def __init__(self, progress: Callable[[int], None] | None, done: Callable[[], None] | None) -> None:
        self._progress, self._done = progress, done
        self._drawn = False

    def progress(self, read: int) -> None:
        self._drawn = True
        self._progress(read)

    def end_line(self) -> None:
        if self._drawn and self._done is not None:
            self._done()
        self._drawn = False
