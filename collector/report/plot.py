# SPDX-License-Identifier: MIT
"""`addaddr report --plot`: the class shares of clients' announced addresses, IPv4 and IPv6 side by side.

matplotlib is the optional `plot` extra, so it is imported here only, when a plot is asked for.
"""

from __future__ import annotations

from collector.errors import CollectorError
from collector.report.formats import FAMILY_NAMES

MISSING_MATPLOTLIB = "--plot needs matplotlib: .venv/bin/pip install 'addaddr[plot]'"


class SharePlot:
    """Imports matplotlib on creation, so that a missing one fails before the logs are read."""

    def __init__(self, path: str) -> None:
        try:
            # Figure without pyplot: no global backend to pick, no display needed (Agg draws the PNG).
            from matplotlib.figure import Figure
        except ImportError:
            raise CollectorError(MISSING_MATPLOTLIB) from None
        self.path = path
        self._figure = Figure

    def save(self, report: dict) -> None:
        """Draws the class shares of clients' announced addresses, a chart per family, into the PNG at
        `path`; CollectorError when it cannot be written."""
        figure = self._figure(figsize=(11, 4.5), layout="constrained")
        for axes, (family, name) in zip(figure.subplots(1, 2, sharey=True), FAMILY_NAMES.items()):
            figures = report[family]
            classes = figures["classes"]
            bars = axes.bar(list(classes), [100 * count / figures["addresses"] for count in classes.values()])
            axes.bar_label(bars, fmt="%.0f%%")
            axes.set_title(f"{name}: {figures['addresses']} announced addresses")
            axes.tick_params(axis="x", labelrotation=45)
        figure.axes[0].set_ylabel("share of addresses (distinct per connection), %")
        try:
            figure.savefig(self.path, format="png")
        except OSError as exc:
            raise CollectorError(f"--plot {self.path}: {exc.strerror or exc}") from None
