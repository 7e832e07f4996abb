# SPDX-License-Identifier: MIT
"""scripts/render-dashboard: a live test run scraped by Prometheus, and the Grafana dashboard's
queries over it drawn as the dashboard lays them out.

Processes are stopped as the tests stop theirs (tests/support/waiting.py).
"""
