"""scripts/render-dashboard: a live test run scraped by Prometheus, and the Grafana dashboard's
queries over it drawn as the dashboard lays them out.

Processes are stopped as the tests stop theirs (tests/waiting.py), so tests/ is put on the import path
here, once.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
