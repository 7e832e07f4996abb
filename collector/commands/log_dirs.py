"""The check every reading command makes before it starts: the log directories exist."""

from pathlib import Path

from collector.errors import CollectorError


def require_log_dirs(log_dirs) -> None:
    for log_dir in log_dirs:
        if not Path(log_dir).is_dir():
            raise CollectorError(f"no log directory {log_dir}; give the one `addaddr run` wrote to with --log-dir")
