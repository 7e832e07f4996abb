# SPDX-License-Identifier: MIT
"""`addaddr tail`: the logged records, readable or as JSON lines, optionally following the log."""

import json
import sys

from collector.commands import console
from collector.commands.log_dirs import require_log_dirs
from collector.commands.skipped import Skipped
from collector.logs.reader import follow as follow_log
from collector.logs.reader import read_records
from collector.report.render import as_json as record_json
from collector.report.render import as_text


def tail(log_dir: str, follow: bool, as_json: bool) -> int:
    """What is skipped (damaged, of the wrong shape, not a log) is named on stderr (exit status 1)."""
    skipped = Skipped()
    # --follow waits for a directory not there yet, never for one that cannot be.
    require_log_dirs((log_dir,), missing_ok=follow)
    records = follow_log(log_dir, on_damage=skipped) if follow else read_records(log_dir, on_damage=skipped)
    try:
        for record in records:
            console.data(json.dumps(record_json(record)) if as_json else as_text(record))
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        sys.stderr.close()  # `addaddr tail | head`: stop quietly
    return skipped.status()
