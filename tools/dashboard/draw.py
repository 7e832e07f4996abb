# SPDX-License-Identifier: MIT
"""The dashboard's panels drawn with matplotlib: each target's PromQL evaluated over a time range by
Prometheus's HTTP API (/api/v1/query_range), laid out on the dashboard's own 24-column grid."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: a file is all we make
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

GRID_COLUMNS = 24
LEGEND_COLUMNS = 5  # of a panel's width, for its legend table, as Grafana puts it on the right
INCHES_PER_ROW = 0.42
TITLE_INCHES = 0.9
# Figure fractions inside each panel's cell: room for the y labels, the title, the time axis.
MARGIN_LEFT, MARGIN_TOP, MARGIN_BOTTOM = 0.035, 0.035, 0.03
# Grafana's legend calculations the dashboard uses.
CALCS = {"mean": lambda values: sum(values) / len(values), "max": max, "lastNotNull": lambda values: values[-1]}
UNIT_LABELS = {"ops": "per second", "percentunit": "share", "short": ""}


def variables(scrape_seconds: int) -> dict[str, str]:
    """The dashboard variables as Grafana would set them: every collector, and $__rate_interval by
    Grafana's rule, max(step + scrape interval, 4 x scrape interval), with the step the scrape interval."""
    return {"$__rate_interval": f"{max(2 * scrape_seconds, 4 * scrape_seconds)}s", "$instance": ".+"}


def expand(expr: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        expr = expr.replace(name, value)
    return expr


def query_range(prometheus: str, expr: str, start: float, end: float, step: int) -> list[dict]:
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{query}", timeout=30) as response:
        answer = json.load(response)
    if answer["status"] != "success":
        raise RuntimeError(f"{expr}: {answer.get('error')}")
    return answer["data"]["result"]


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template) or str(labels)


def series(prometheus: str, panel: dict, values: dict, start: float, end: float, step: int) -> list[tuple]:
    """(legend, times, values) of every series of every target of `panel`, over the range; an instant
    target gives its value at `end` alone."""
    drawn = []
    for target in panel["targets"]:
        expr = expand(target["expr"], values)
        results = (
            query_range(prometheus, expr, end, end, step)
            if target.get("instant")
            else query_range(prometheus, expr, start, end, step)
        )
        for result in results:
            times = [datetime.fromtimestamp(t, UTC) for t, _ in result["values"]]
            drawn.append(
                (
                    legend(target.get("legendFormat", ""), result["metric"]),
                    times,
                    [float(v) for _, v in result["values"]],
                )
            )
    return sorted(drawn, key=lambda one: one[0])


def draw(
    dashboard_path: Path, prometheus: str, start: float, end: float, step: int, out: Path, note: str
) -> dict[str, int]:
    """Draws every panel into `out` where its gridPos puts it; returns the number of series each
    panel's queries gave."""
    dashboard = json.loads(dashboard_path.read_text())
    panels = dashboard["panels"]
    values = variables(step)
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    figure = plt.figure(figsize=(18, rows * INCHES_PER_ROW + TITLE_INCHES))
    figure.suptitle(f"{dashboard['title']}\n{note}", fontsize=10)
    content = 1 - TITLE_INCHES / figure.get_figheight()  # the grid's share of the height, below the title
    counts = {}
    for panel in panels:
        plot, key = _areas(figure, panel["gridPos"], rows, content)
        drawn = series(prometheus, panel, values, start, end, step)
        counts[panel["title"]] = len(drawn)
        plot.set_title(panel["title"], fontsize=9, loc="left")
        if not drawn:
            plot.text(0.5, 0.5, "no data", ha="center", va="center", transform=plot.transAxes)
        elif panel["type"] == "bargauge":
            _bars(plot, panel, drawn)
        else:
            _lines(plot, key, panel, drawn)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return counts


def _areas(figure, place: dict, rows: int, content: float):
    """The panel's plot axes and legend axes, in its grid cell less margins for titles and ticks."""
    column, row = 1 / GRID_COLUMNS, content / rows
    left = place["x"] * column + MARGIN_LEFT
    bottom = content - (place["y"] + place["h"]) * row + MARGIN_BOTTOM
    height = place["h"] * row - MARGIN_BOTTOM - MARGIN_TOP
    legend_width = LEGEND_COLUMNS * column
    plot = figure.add_axes((left, bottom, place["w"] * column - legend_width - MARGIN_LEFT, height))
    key = figure.add_axes(
        (left + place["w"] * column - legend_width - MARGIN_LEFT + 0.005, bottom, legend_width - 0.01, height)
    )
    key.axis("off")
    return plot, key


def _lines(plot, key, panel: dict, drawn: list[tuple]) -> None:
    defaults = panel["fieldConfig"]["defaults"]
    calcs = panel["options"]["legend"].get("calcs", [])
    # Light and dark pairs tell many stacked bands apart; lines need the stronger colours.
    colours = plt.get_cmap("tab20" if len(drawn) > 10 else "tab10").colors
    labels = [name + "".join(f"  {calc} {CALCS[calc](values):.3g}" for calc in calcs) for name, _, values in drawn]
    if defaults["custom"]["stacking"]["mode"] == "normal" and len({len(t) for _, t, _ in drawn}) == 1:
        handles = plot.stackplot(drawn[0][1], *[v for _, _, v in drawn], colors=colours, alpha=0.85)
    else:
        handles = [
            plot.plot(t, v, linewidth=1.2, color=colours[i % len(colours)])[0] for i, (_, t, v) in enumerate(drawn)
        ]
    key.legend(handles, labels, loc="upper left", fontsize=6.5, frameon=False)
    plot.set_ylim(bottom=0)
    plot.set_ylabel(UNIT_LABELS.get(defaults.get("unit"), ""), fontsize=8)
    plot.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=UTC))
    plot.tick_params(labelsize=7)
    plot.grid(alpha=0.3)


def _bars(plot, panel: dict, drawn: list[tuple]) -> None:
    """A horizontal bar gauge of each series' value, on a 0-1 scale for percentunit."""
    defaults = panel["fieldConfig"]["defaults"]
    names, values = [name for name, _, _ in drawn], [v[-1] for _, _, v in drawn]
    colours = ["tab:blue" if name.startswith("ipv4") else "tab:orange" for name in names]
    positions = range(len(names) - 1, -1, -1)
    plot.barh(list(positions), [defaults.get("max", 1)] * len(names), color="0.92")
    plot.barh(list(positions), values, color=colours)
    plot.set_yticks(list(positions), names, fontsize=7)
    plot.set_xlim(defaults.get("min", 0), defaults.get("max", max(values)))
    if defaults.get("unit") == "percentunit":
        plot.xaxis.set_major_formatter(PercentFormatter(1.0))
        for y, value in zip(positions, values):
            plot.text(value + 0.01, y, f"{value:.{defaults.get('decimals', 1)}%}", va="center", fontsize=7)
    plot.tick_params(labelsize=7)
