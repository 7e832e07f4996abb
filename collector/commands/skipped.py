# SPDX-License-Identifier: MIT
"""What readers skipped in the logs, one line each on stderr, and the exit status it makes."""

from pathlib import Path

from collector.commands import console


class Skipped:
    """A damage handler for the log readers (collector/logs/reader.py) that prints and counts."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, path: Path, offset: int, reason: str) -> None:
        """Names what was skipped on stderr, `PATH: byte OFFSET: REASON`, and counts it."""
        self.count += 1
        console.error(f"{path}: byte {offset}: {reason}")

    def status(self) -> int:
        """Exit status 1 when anything was skipped: the figures or records printed miss it."""
        return console.EXIT_BAD_INPUT if self.count else console.EXIT_OK
