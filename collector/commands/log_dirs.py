# SPDX-License-Identifier: MIT
"""The check every reading command makes before it starts: the log directories exist."""

import errno
import os
import stat

from collector.errors import CollectorError

ASK = "give the one `addaddr run` wrote to with --log-dir"


def require_log_dirs(log_dirs, missing_ok: bool = False) -> None:
    """CollectorError, one line, for the first of `log_dirs` that is not a directory we can read.
    `missing_ok`: one that is not there yet passes (`tail --follow` waits for it)."""
    for log_dir in log_dirs:
        try:
            mode = os.stat(log_dir).st_mode
        except OSError as exc:
            if exc.errno == errno.ENOENT and missing_ok:
                continue
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise CollectorError(f"no log directory {log_dir}; {ASK}") from None
            if exc.errno == errno.EACCES:
                raise CollectorError(
                    f"log directory {log_dir}: permission denied; run as a user who may "
                    "read it (the one `addaddr run` ran as, or root)"
                ) from None
            raise CollectorError(f"log directory {log_dir}: {exc.strerror}; {ASK}") from None
        except ValueError:  # a NUL in the name
            raise CollectorError(f"no log directory {log_dir!r}; {ASK}") from None
        if not stat.S_ISDIR(mode):
            raise CollectorError(f"{log_dir} is not a directory; {ASK}")
