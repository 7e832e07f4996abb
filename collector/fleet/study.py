# SPDX-License-Identifier: MIT
"""The study's figures from the Parquet export: the statements of study.sql, then the report's dict.

Any engine that runs SQL over the dataset (DuckDB here, Spark in collector/fleet/spark.py) gives its
rows to `figures()`, which shapes them exactly as `report` does over the logs.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

from collector.report.figures import FAMILIES, FamilyClasses, _share
from collector.report.render import iso_time

STUDY_SQL = Path(__file__).with_name("study.sql")
TABLES = ("connections", "announcements", "events", "lost")
SIDES = ("client", "server")
_FIGURE = "-- figure: "


def statements() -> dict[str, str]:
    """figure name -> its SELECT, in the file's order."""
    named: dict[str, str] = {}
    for block in STUDY_SQL.read_text().split(_FIGURE)[1:]:
        name, _, body = block.partition("\n")
        named[name.strip()] = body.strip().rstrip(";")
    return named


def window_microseconds(epoch: float | None, unbounded: float) -> int | float:
    """A --since/--until bound on the scale of the dataset's microsecond times."""
    if epoch is None:
        return unbounded
    whole = math.trunc(epoch)
    return whole * 1_000_000 + round((epoch - whole) * 1e6)


def _seen(moment: datetime | None) -> str | None:
    return None if moment is None else iso_time(moment.timestamp())


def figures(rows: dict[str, list[dict]]) -> dict:
    """The report's dict from each figure's rows (dicts by column name)."""
    totals = rows["totals"][0]
    sides = {side: {family: FamilyClasses() for family in FAMILIES} for side in SIDES}
    for row in rows["classes"]:
        counts = sides[row["announcer"]][row["family"]]
        counts.addresses += row["pairs"]
        counts.classes[row["class"]] = counts.classes.get(row["class"], 0) + row["pairs"]
        embedded = row["embedded_ipv4_class"]
        if embedded is not None:
            counts.embedded[embedded] = counts.embedded.get(embedded, 0) + row["pairs"]
    versions = {"v0": 0, "v1": 0}
    for row in sorted(rows["versions"], key=lambda r: r["version"]):
        versions[f"v{row['version']}"] = row["connections"]
    seen = rows["seen"][0]
    client = {family: sides["client"][family].figures() for family in FAMILIES}
    connections, announcing = totals["connections"], totals["connections_announcing"]
    return {
        "connections": connections,
        "attempts": totals["attempts"],
        "connections_announcing": announcing,
        "connections_announcing_share": _share(announcing, connections),
        "announcements": totals["announcements"],
        **client,
        "distinct_addresses": totals["distinct_addresses"],
        "with_port": totals["with_port"],
        "versions": versions,
        "server_announced": {
            "announcements": totals["server_announcements"],
            **{family: sides["server"][family].figures() for family in FAMILIES},
        },
        "unattributed": totals["unattributed"],
        "lost_events": int(totals["lost_events"]),
        "first_seen": _seen(seen["first_seen"]),
        "last_seen": _seen(seen["last_seen"]),
    }


def duckdb_report(dataset: str, since: float | None = None, until: float | None = None) -> dict:
    """The figures of the export at `dataset`, DuckDB reading its Parquet files (out of core, all CPUs)."""
    import duckdb

    low, high = window_microseconds(since, -math.inf), window_microseconds(until, math.inf)
    conditions = " AND ".join(
        [f"epoch_us(time) >= {low}"] * (low != -math.inf) + [f"epoch_us(time) < {high}"] * (high != math.inf)
    )
    where = f" WHERE {conditions}" if conditions else ""
    with duckdb.connect() as db:
        db.execute("SET TimeZone = 'UTC'")
        for table in TABLES:
            files = (Path(dataset) / table).as_posix() + "/*/*/*.parquet"
            db.execute(
                f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{_quoted(files)}', "
                f"hive_partitioning = true, hive_types_autocast = false){where}"
            )
        rows = {}
        for name, sql in statements().items():
            cursor = db.execute(sql)
            columns = [d[0] for d in cursor.description]
            rows[name] = [dict(zip(columns, values)) for values in cursor.fetchall()]
    return figures(rows)


def _quoted(text: str) -> str:
    return text.replace("'", "''")
