"""The benchmarks of `scripts/bench`: one module each, run by __main__.py; measure.py is what they share.

The frames and captures are built with the tests' own builders (tests/frames.py, tests/replay_fixtures.py),
so tests/ is put on the import path here, once.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The command as a user runs it, from the project's virtualenv.
ADDADDR = str(ROOT / ".venv" / "bin" / "addaddr")

sys.path.insert(0, str(ROOT / "tests"))
