# SPDX-License-Identifier: MIT
"""The benchmarks of `scripts/bench`: one module each, run by __main__.py; measure.py is what they share.

The frames and captures are built with the tests' own builders (tests/support/frames.py,
tests/support/replay_fixtures.py), importable in the development venv (scripts/setup --test).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The command as a user runs it, from the project's virtualenv.
ADDADDR = str(ROOT / ".venv" / "bin" / "addaddr")
