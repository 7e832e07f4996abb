# SPDX-License-Identifier: MIT
"""The report dict (collector/report/figures.py) as text: a table for people, JSON, CSV, or Markdown for papers.

Every format is drawn from the one dict: CSV flattens it to `section,key,value` rows; the table and
Markdown forms lay the same `Table`s out, after the study's headline sentences.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import NamedTuple

from collector.report.figures import GLOBAL
from collector.report.table import render_table

FAMILY_NAMES = {"ipv4": "IPv4", "ipv6": "IPv6"}
# Top-level scalars have no section of their own in CSV.
SUMMARY = "summary"


class Table(NamedTuple):
    """One table of the report: a title, the column names and rows of cell text."""

    title: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]


def percent(share: float) -> str:
    """A share (0 to 1) as a whole percentage: 42%."""
    return f"{round(share * 100)}%"


def _class_list(shares: list[tuple[str, float]]) -> str:
    named = [f"{name} ({percent(share)})" for name, share in shares]
    return named[0] if len(named) == 1 else f"{', '.join(named[:-1])} or {named[-1]}"


def headline(report: dict) -> str:
    """The study's sentences, with our figures."""
    connections = report["connections"]
    if connections:
        sentences = [
            f"Over the {connections} observed MPTCP connections, {report['connections_announcing']} "
            f"of them ({percent(report['connections_announcing_share'])}) announced at least one "
            f"address."
        ]
    else:
        sentences = ["No MPTCP connection was observed."]
    for family, name in FAMILY_NAMES.items():
        figures = report[family]
        if figures["global_share"] is None:
            sentences.append(f"No {name} address was announced.")
            continue
        routable = round(figures["global_share"] * 100)
        sentence = f"{routable}% of the announced {name} addresses were globally routable"
        others = [(c, n / figures["addresses"]) for c, n in figures["classes"].items() if c != GLOBAL]
        # The study spells the other classes out for IPv4 only; IPv6's go to its table.
        if family == "ipv4" and others:
            # From the rounded share, so that the two always add up to 100%.
            sentence += f"; the other {100 - routable}% were {_class_list(others)}"
        sentences.append(sentence + ".")
    return " ".join(sentences)


def _class_table(title: str, counts: dict[str, int]) -> Table:
    total = sum(counts.values())
    return Table(
        title,
        ("CLASS", "COUNT", "SHARE"),
        [(name, str(count), f"{count / total:.1%}") for name, count in counts.items()],
    )


def _family_tables(report: dict, whose: str) -> Iterator[Table]:
    for family, name in FAMILY_NAMES.items():
        figures = report[family]
        if not figures["addresses"]:
            continue  # an empty table says no more than its count of 0
        yield _class_table(
            f"{name} addresses announced by {whose}: {figures['addresses']}, each once per connection",
            figures["classes"],
        )
        if figures["embedded"]:
            yield _class_table(f"IPv4 addresses embedded in those {name} addresses", figures["embedded"])


def _value_text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1%}"
    return str(value)


def tables(report: dict) -> list[Table]:
    """Class tables of clients' addresses, then servers' when they announced any, then the other figures."""
    result = list(_family_tables(report, "clients"))
    server = report["server_announced"]
    if server["announcements"]:
        result += _family_tables(server, "servers")
    others = [
        ("connections", report["connections"]),
        ("attempts (no MP_CAPABLE exchange)", report["attempts"]),
        ("connections announcing", report["connections_announcing"]),
        ("connections announcing (share)", report["connections_announcing_share"]),
        ("client announcements (retransmissions included)", report["announcements"]),
        ("distinct client addresses", report["distinct_addresses"]),
        ("client announcements with a port", report["with_port"]),
        *((f"connections MPTCP {version}", count) for version, count in report["versions"].items()),
        ("server announcements", server["announcements"]),
        ("announcements of no known connection", report["unattributed"]),
        ("lost kernel events", report["lost_events"]),
        ("first record", report["first_seen"]),
        ("last record", report["last_seen"]),
    ]
    result.append(Table("Other figures", ("FIGURE", "VALUE"), [(k, _value_text(v)) for k, v in others]))
    return result


def as_table(report: dict) -> str:
    """The report for a terminal: the headline, then each table in aligned columns."""
    parts = [headline(report)]
    parts += [f"{table.title}\n{render_table(table.header, table.rows)}" for table in tables(report)]
    return "\n\n".join(parts)


def _markdown_row(cells) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def as_markdown(report: dict) -> str:
    """The report in Markdown: the headline, then each table as a pipe table."""
    parts = [headline(report)]
    for table in tables(report):
        # Counts and shares right-aligned, names left.
        align = ["---"] + ["---:"] * (len(table.header) - 1)
        lines = [f"**{table.title}**", "", _markdown_row(table.header), _markdown_row(align)]
        lines += map(_markdown_row, table.rows)
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def rows(figures: dict, section: str = "") -> Iterator[tuple[str, str, object]]:
    """(section, key, value) per leaf: `ipv4.classes,private,12`; top-level scalars under `summary`."""
    for key, value in figures.items():
        if isinstance(value, dict):
            yield from rows(value, f"{section}.{key}" if section else key)
        else:
            yield section or SUMMARY, key, value


def as_csv(report: dict) -> str:
    """The report as CSV rows of (section, key, value), one per figure."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("section", "key", "value"))
    writer.writerows((section, key, "" if value is None else value) for section, key, value in rows(report))
    return out.getvalue().rstrip("\n")


def as_json(report: dict) -> str:
    """The report dict as indented JSON."""
    return json.dumps(report, indent=2)


RENDERERS = {"table": as_table, "json": as_json, "csv": as_csv, "markdown": as_markdown}
FORMATS = tuple(RENDERERS)


def render(report: dict, form: str) -> str:
    """The report in format `form`, one of FORMATS."""
    return RENDERERS[form](report)
