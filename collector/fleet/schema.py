# SPDX-License-Identifier: MIT
"""The Parquet types of the export's tables (docs/records.md, "Parquet export"), and rows to Arrow tables.

Times are UTC timestamps in microseconds, rounded as `iso_time` rounds them, so that the figures
computed from the export print the same instants as those computed from the logs. Tokens are int64
(a token is 32 bits; Spark has no unsigned types), MPTCP keys decimal(20, 0) (64 bits unsigned).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from collector.fleet.rows import TABLE_COLUMNS

TIME = pa.timestamp("us", tz="UTC")
_COUNTERS = pa.map_(pa.string(), pa.int64())
_PORT = pa.int32()
_TYPES = {
    "time": TIME,
    "ended": TIME,
    "connection": pa.int64(),
    "announcer": pa.string(),
    "subflow": pa.string(),
    "echo": pa.bool_(),
    "version": pa.int32(),
    "address_id": pa.int32(),
    "address": pa.string(),
    "port": _PORT,
    "hmac": pa.binary(),
    "family": pa.string(),
    "class": pa.string(),
    "global": pa.bool_(),
    "embedded_ipv4_address": pa.string(),
    "embedded_ipv4_class": pa.string(),
    "embedded_ipv4_global": pa.bool_(),
    "src": pa.string(),
    "sport": _PORT,
    "dst": pa.string(),
    "dport": _PORT,
    "ifindex": pa.int32(),
    "established": pa.bool_(),
    "client": pa.string(),
    "client_port": _PORT,
    "server": pa.string(),
    "server_port": _PORT,
    "client_key": pa.decimal128(20, 0),
    "server_key": pa.decimal128(20, 0),
    "end_reason": pa.string(),
    "joins": pa.int32(),
    "kind": pa.string(),
    "details": pa.string(),
    "count": pa.int64(),
    "events": pa.int64(),
    "announcements": pa.int64(),
    "lost": pa.int64(),
    "unwritten": pa.int64(),
    "kernel": _COUNTERS,
    "tracker": _COUNTERS,
}
SCHEMAS = {
    table: pa.schema([("time", TIME)] + [(name, _TYPES[name]) for name in columns])
    for table, columns in TABLE_COLUMNS.items()
}
_TIMES = ("time", "ended")
# Announcements are their records as they are: the embedded IPv4 address is one map there, three columns here.
_EMBEDDED = "embedded_ipv4"
_EMBEDDED_COLUMNS = tuple(f"{_EMBEDDED}_{name}" for name in ("address", "class", "global"))


def _row_type(schema: pa.Schema) -> pa.StructType:
    """The struct of a table's rows as the export holds them: times as epoch seconds."""
    fields = [
        pa.field(f.name, pa.float64()) if f.name in _TIMES else f for f in schema if f.name not in _EMBEDDED_COLUMNS
    ]
    if _EMBEDDED_COLUMNS[0] in schema.names:
        fields.append(
            pa.field(
                _EMBEDDED,
                pa.struct(
                    [(name.removeprefix(_EMBEDDED + "_"), schema.field(name).type) for name in _EMBEDDED_COLUMNS]
                ),
            )
        )
    return pa.struct(fields)


_ROW_TYPES = {table: _row_type(schema) for table, schema in SCHEMAS.items()}


def _microseconds(seconds: pa.Array) -> pa.Array:
    # As datetime.fromtimestamp rounds: the fraction of a second to microseconds, half to even.
    whole = pc.trunc(seconds)
    fraction = pc.round(pc.multiply(pc.subtract(seconds, whole), 1e6), round_mode="half_to_even")
    return pc.cast(pc.cast(pc.add(pc.multiply(whole, 1e6), fraction), pa.int64()), TIME)


def arrow_table(table: str, rows: list[dict]) -> pa.Table:
    """Rows (dicts; keys that are no column are ignored) to a table. Converted as one struct array, by
    Arrow itself: a Python loop over rows and columns took three times as long."""
    row_type = _ROW_TYPES[table]
    columns = dict(zip(row_type.names, pa.array(rows, row_type).flatten()))
    embedded = columns.pop(_EMBEDDED, None)
    if embedded is not None:
        columns.update(zip(_EMBEDDED_COLUMNS, embedded.flatten()))
    for name in _TIMES:
        if name in columns:
            columns[name] = _microseconds(columns[name])
    schema = SCHEMAS[table]
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)
