# SPDX-License-Identifier: MIT
"""Log records to the rows of the export's tables (docs/records.md, "Parquet export").

One row per record, except `connections`: one row per connection, made of its `connection` record,
its joins and its `connection_end`, and one per `attempt`. A connection still open when the records
run out stays in `Connections.open`, so the next export (the log grew) completes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from collector.report.render import as_json

# The export's manifest, in the dataset's directory (collector/fleet/export.py); here, where no
# Parquet library is loaded, so that commands can check for a dataset without the `fleet` extra.
MANIFEST = "_addaddr_export.json"
# Columns of each table, partition columns (host, date) aside; every table also has `time`.
ANNOUNCEMENT_COLUMNS = (
    "connection",
    "announcer",
    "subflow",
    "echo",
    "version",
    "address_id",
    "address",
    "port",
    "hmac",
    "family",
    "class",
    "global",
    "embedded_ipv4_address",
    "embedded_ipv4_class",
    "embedded_ipv4_global",
    "src",
    "sport",
    "dst",
    "dport",
    "ifindex",
)
CONNECTION_COLUMNS = (
    "connection",
    "established",
    "version",
    "client",
    "client_port",
    "server",
    "server_port",
    "client_key",
    "server_key",
    "ended",
    "end_reason",
    "joins",
)
EVENT_COLUMNS = ("kind", "connection", "src", "sport", "dst", "dport", "ifindex", "details")
LOST_COLUMNS = ("count",)
STATS_COLUMNS = ("events", "announcements", "lost", "unwritten", "kernel", "tracker", "details")
TABLE_COLUMNS = {
    "announcements": ANNOUNCEMENT_COLUMNS,
    "connections": CONNECTION_COLUMNS,
    "events": EVENT_COLUMNS,
    "lost": LOST_COLUMNS,
    "stats": STATS_COLUMNS,
}
_COMMON = ("kind", "time")
_CONNECTION_FIELDS = (
    "connection",
    "version",
    "client",
    "client_port",
    "server",
    "server_port",
    "client_key",
    "server_key",
)
_ATTEMPT_FIELDS = ("version", "client", "client_port", "server", "server_port")

Row = dict
Emit = Callable[[str, str, Row], None]  # (table, host, row)


# json.dumps(value, sort_keys=True), without making an encoder for every row (a tenth of its cost).
_DETAILS_JSON = json.JSONEncoder(sort_keys=True).encode


def _details(record: dict, columns: Iterable[str]) -> str | None:
    """The fields that have no column of their own, as `tail --json` shows them."""
    rest = {k: v for k, v in record.items() if k not in columns and k not in _COMMON}
    return _DETAILS_JSON(as_json(rest)) if rest else None


def event_row(record: dict) -> Row:
    """The `events` row of a record of no table of its own (join, removal, end, reset, malformed...);
    the fields without a column in `details`."""
    row = {name: record.get(name) for name in EVENT_COLUMNS}
    row["details"] = _details(record, EVENT_COLUMNS)
    row["time"] = record["time"]
    return row


def stats_row(record: dict) -> Row:
    """The `stats` row of a stats record; the fields without a column in `details`."""
    row = {name: record.get(name) for name in STATS_COLUMNS}
    row["details"] = _details(record, STATS_COLUMNS)
    row["time"] = record["time"]
    return row


class Connections:
    """Assembles `connections` rows: open ones keyed by (host, token) until their end comes."""

    def __init__(self, emit: Emit, open_rows: Iterable[tuple[str, Row]] = ()) -> None:
        self._emit = emit
        self.open: dict[tuple[str, int], Row] = {(host, row["connection"]): row for host, row in open_rows}

    def start(self, host: str, record: dict) -> None:
        """Opens the row of a `connection` record; an open one of the same token is over, and emitted."""
        key = (host, record["connection"])
        stale = self.open.pop(key, None)
        if stale is not None:
            # The token came back without an end between (a collector that died): the old one is over.
            self._emit("connections", host, stale)
        row = {name: record[name] for name in _CONNECTION_FIELDS}
        row.update(time=record["time"], established=True, ended=None, end_reason=None, joins=0)
        self.open[key] = row

    def join(self, host: str, record: dict) -> None:
        """Counts an MP_JOIN on its connection's open row; one of no open row counts nowhere."""
        row = self.open.get((host, record["connection"]))
        if row is not None:
            row["joins"] += 1

    def end(self, host: str, record: dict) -> None:
        """Completes the open row with the `connection_end`'s time and reason, and emits it."""
        row = self.open.pop((host, record["connection"]), None)
        if row is not None:
            row["ended"], row["end_reason"] = record["time"], record["reason"]
            self._emit("connections", host, row)

    def attempt(self, host: str, record: dict) -> None:
        """Emits the row of an `attempt` record: a connection never established, ended as it was."""
        row = {name: record[name] for name in _ATTEMPT_FIELDS}
        row.update(
            time=record["time"],
            connection=None,
            established=False,
            client_key=None,
            server_key=None,
            ended=record["time"],
            end_reason=record["reason"],
            joins=0,
        )
        self._emit("connections", host, row)

    def open_rows(self) -> list[tuple[str, Row]]:
        """The rows still open, (host, row) each: the manifest keeps them for the next export."""
        return [(host, row) for (host, _), row in self.open.items()]


class RowMaker:
    """Feeds records of one host at a time to `emit` as rows of their table.

    Records outside [since, until) make no row; the joins and ends of open connections still count,
    so that a connection seen to start is completed whatever the window.
    """

    def __init__(self, emit: Emit, connections: Connections, since: float, until: float) -> None:
        self._emit = emit
        self.connections = connections
        self._since, self._until = since, until

    def add(self, host: str, record: dict) -> None:
        """Emits the row `record` of `host` makes, if inside the window; a header makes none."""
        kind, time = record.get("kind"), record.get("time")
        if time is None:
            return  # the header: its host is the caller's
        inside = self._since <= time < self._until
        if kind == "mp_join" and record.get("connection") is not None:
            self.connections.join(host, record)
        elif kind == "connection_end":
            self.connections.end(host, record)
        if not inside:
            return
        if kind == "add_addr":
            self._emit("announcements", host, record)  # its row: parquet_schema takes the columns
        elif kind == "connection":
            self.connections.start(host, record)
        elif kind == "attempt":
            self.connections.attempt(host, record)
        elif kind == "lost":
            self._emit("lost", host, {"time": time, "count": record["count"]})
        elif kind == "stats":
            self._emit("stats", host, stats_row(record))
        else:
            self._emit("events", host, event_row(record))
