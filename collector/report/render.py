# SPDX-License-Identifier: MIT
"""Log records for people and for programs: one JSON object a line, or one readable line."""

from __future__ import annotations

from datetime import UTC, datetime

from collector.logs.schema import TIME_MAX, TIME_MIN

# Record fields that hold MPTCP tokens: shown as 8 hex digits, as `ip mptcp monitor` prints them.
TOKEN_FIELDS = frozenset({"connection", "token"})
TIME_FIELDS = frozenset({"time", "started", "file_started"})


def iso_time(epoch: float) -> str:
    """Epoch seconds as ISO 8601 in UTC, to the microsecond: 2024-05-01T12:00:00.000000Z."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def token_text(token: int | None) -> str | None:
    """A connection token as records are shown: 8 hex digits; None stays None."""
    return None if token is None else f"{token:08x}"


def _json_value(key: str, value):
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if key in TOKEN_FIELDS and isinstance(value, int):
        return token_text(value)
    if key in TIME_FIELDS and type(value) in (int, float) and TIME_MIN <= value < TIME_MAX:
        return iso_time(value)
    if isinstance(value, dict):
        # JSON keys are strings: a map of a newer record kind may have bytes keys.
        return {(k.hex() if isinstance(k, bytes) else k): _json_value(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(key, v) for v in value]
    # msgpack extension types (a newer record's field): shown, not a crash of `tail --json`.
    return value if value is None or isinstance(value, (str, int, float)) else str(value)


def as_json(record: dict) -> dict:
    """JSON-ready: times ISO 8601 UTC, tokens hex, bytes hex; everything else as logged."""
    return _json_value("", record)


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _subflow(r: dict) -> str:
    return f"{_endpoint(r['src'], r['sport'])} > {_endpoint(r['dst'], r['dport'])}"


def _add_addr(r: dict) -> str:
    port = f" port {r['port']}" if r["port"] is not None else ""
    embedded = r["embedded_ipv4"]
    inside = f" (embeds {embedded['address']} {embedded['class']})" if embedded else ""
    what = "echo" if r["echo"] else f"announce by {r['announcer'] or 'unknown'}"
    return (
        f"{what} id {r['address_id']} {r['address']}{port} {r['class']}"
        f"{' global' if r['global'] else ''}{inside} v{r['version']}"
        f" conn {token_text(r['connection']) or '-'} {_subflow(r)}"
    )


_TEXT = {
    "add_addr": _add_addr,
    "connection": lambda r: (
        f"connection {token_text(r['connection'])} v{r['version']} "
        f"{_endpoint(r['client'], r['client_port'])} > {_endpoint(r['server'], r['server_port'])}"
    ),
    "mp_join": lambda r: f"join conn {token_text(r['connection']) or '-'} id {r['address_id']} {_subflow(r)}",
    "remove_addr": lambda r: (
        f"remove ids {','.join(map(str, r['address_ids']))} by {r['announcer'] or 'unknown'} "
        f"conn {token_text(r['connection']) or '-'}"
    ),
    "connection_end": lambda r: f"end conn {token_text(r['connection'])} ({r['reason']})",
    "lost": lambda r: f"LOST {r['count']} kernel samples (perf buffer full)",
    "stats": lambda r: (
        f"stats: {r['events']} events, {r['announcements']} announcements, {r['lost']} lost, "
        f"kernel {r['kernel'].get('packets', 0)} packets {r['kernel'].get('mptcp', 0)} mptcp"
    ),
    "header": lambda r: (
        f"log started by {r.get('host')} on {','.join(r.get('interfaces') or [])} "
        f"(addaddr {r.get('collector_version')}, {r.get('source')})"
    ),
}


def as_text(record: dict) -> str:
    """One record as a line of `addaddr tail`: its time, its kind, what it says."""
    kind = record.get("kind", "?")
    when = iso_time(record["time"]) if "time" in record else iso_time(record.get("file_started", 0))
    describe = _TEXT.get(kind)
    body = (
        describe(record)
        if describe
        else " ".join(f"{k}={v}" for k, v in as_json(record).items() if k not in ("kind", "time"))
    )
    return f"{when} {kind:<14} {body}"
