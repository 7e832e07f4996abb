# SPDX-License-Identifier: MIT
"""The shape every log record must have before anything reads it: one table, docs/records.md in code.

`problem(record)` is None for a record that readers may use as docs/records.md describes it, or why it
may not. Readers (collector/logs/writer.py) skip and count such records like damage, so `tail` and `report`
never meet a missing field, a string where a number belongs, or a time that no clock can show.

Extra fields are fine (a newer collector may add some). A record of a kind this table does not know
passes with only `kind` and `time` checked: it is a newer collector's, and each reader uses only the
kinds it knows.

Checked per record, so cheap: the types of a kind's fields, in table order, make one tuple, and a
tuple once found good is remembered, so most records cost one tuple built and one set lookup. Value
checks are left to the few fields whose value readers use as a key or a clock.
"""

from __future__ import annotations

from itertools import repeat
from operator import itemgetter

# Readers show times as ISO 8601 (datetime), which ends with year 9999: the first moment of year
# 10000 in epoch seconds. Before 1970 no MPTCP packet was sent.
TIME_MIN = 0.0
TIME_MAX = 253402300800.0
FAMILIES = ("ipv4", "ipv6")


class _Absent:
    """The type of a field that is not there at all, as opposed to one holding None."""


_ABSENT = _Absent()

NUMBER = (int, float)
INT = (int,)
STR = (str,)
BOOL = (bool,)
BYTES = (bytes,)
MAP = (dict,)
LIST = (list,)
NULL = (type(None),)
OPTIONAL = (_Absent, type(None))  # may be left out, or None

_SEGMENT = {"src": STR, "sport": INT, "dst": STR, "dport": INT, "ifindex": INT, "connection": INT + NULL}

# kind -> field -> the types its value may have. `kind` and `time` are every record's (the header has
# `file_started` instead of `time`).
SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "header": {
        "format": INT,
        "file_started": NUMBER,
        "host": STR + OPTIONAL,
        "interfaces": LIST + OPTIONAL,
        "netns": STR + OPTIONAL,
        "collector_version": STR + OPTIONAL,
        "started": NUMBER + OPTIONAL,
        "source": STR + OPTIONAL,
        "repairs": LIST + OPTIONAL,
        "anonymization": STR + OPTIONAL,
        "attach": STR + OPTIONAL,
    },
    "add_addr": {
        "time": NUMBER,
        **_SEGMENT,
        "announcer": STR + NULL,
        "subflow": STR + NULL,
        "version": INT,
        "echo": BOOL,
        "address_id": INT,
        "address": STR,
        "port": INT + NULL,
        "hmac": BYTES + NULL,
        "family": STR,
        "class": STR,
        "global": BOOL,
        "embedded_ipv4": MAP + NULL,
    },
    "mp_join": {"time": NUMBER, **_SEGMENT, "token": INT, "address_id": INT, "backup": BOOL, "form": STR},
    "remove_addr": {"time": NUMBER, **_SEGMENT, "announcer": STR + NULL, "address_ids": LIST},
    "fastclose": {"time": NUMBER, **_SEGMENT},
    "tcp_rst": {"time": NUMBER, **_SEGMENT, "reason": INT},
    "malformed": {"time": NUMBER, **_SEGMENT, "subtype": INT + NULL, "reason": STR, "option": BYTES},
    "connection": {
        "time": NUMBER,
        "connection": INT,
        "version": INT,
        "client": STR,
        "client_port": INT,
        "server": STR,
        "server_port": INT,
        "client_key": INT,
        "server_key": INT,
    },
    "connection_end": {"time": NUMBER, "connection": INT, "reason": STR},
    "attempt": {
        "time": NUMBER,
        "version": INT,
        "client": STR,
        "client_port": INT,
        "server": STR,
        "server_port": INT,
        "reason": STR,
    },
    "stats": {
        "time": NUMBER,
        "kernel": MAP,
        "tracker": MAP,
        "events": INT,
        "announcements": INT,
        "lost": INT,
        "unwritten": INT,
    },
    "lost": {"time": NUMBER, "count": INT},
    # An interface the run watches went away or came back.
    "interface": {"time": NUMBER, "iface": STR, "ifindex": INT + NULL, "netns": STR + NULL, "state": STR},
}
_UNKNOWN_KIND = {"time": NUMBER}
# Fields holding a moment: within TIME_MIN..TIME_MAX, so never NaN, infinite or past year 9999.
_MOMENTS = {
    kind: tuple(name for name in ("time", "file_started", "started") if name in fields)
    for kind, fields in SCHEMA.items()
}
# What is inside the maps and lists above, where readers look inside.
_EMBEDDED_IPV4 = {"address": STR, "class": STR, "global": BOOL}


def _name(kind: type) -> str:
    return {_Absent: "absent", type(None): "None"}.get(kind, kind.__name__)


def _type_problem(record: dict, fields: dict[str, tuple[type, ...]]) -> str | None:
    for name, types in fields.items():
        value = record.get(name, _ABSENT)
        if type(value) not in types:
            if value is _ABSENT:
                return f"no field {name!r}"
            return f"{name!r} is {_name(type(value))}, not {' or '.join(map(_name, types))}"
    return None


def _add_addr(record: dict) -> str | None:
    if record["family"] not in FAMILIES:
        return f"'family' {record['family']!r} is not one of {', '.join(FAMILIES)}"
    embedded = record["embedded_ipv4"]
    inner = None if embedded is None else _type_problem(embedded, _EMBEDDED_IPV4)
    return None if inner is None else f"'embedded_ipv4': {inner}"


def _remove_addr(record: dict) -> str | None:
    if any(type(i) is not int for i in record["address_ids"]):
        return "'address_ids' holds something other than int"
    return None


def _header(record: dict) -> str | None:
    if any(type(i) is not str for i in record.get("interfaces") or ()):
        return "'interfaces' holds something other than str"
    return None


# The maps whose fields _VALUES checks by name: kind -> (field, the fields inside).
_INNER = {"add_addr": ("embedded_ipv4", _EMBEDDED_IPV4)}
# Kinds whose readers use a value beyond its type: as a key, or by looking inside it.
_VALUES = {"add_addr": _add_addr, "remove_addr": _remove_addr, "header": _header}


def problem(record) -> str | None:
    """None when `record` has its kind's shape; else why not, in a few words."""
    try:
        check = CHECKS[record["kind"]]
        # The fast path, for the kinds the table knows: every field there, of a combination of
        # types seen good before, at a sane time, and the few values that are keys sane too.
        if tuple(map(type, check.get(record))) in check.good and TIME_MIN <= record[check.clock] < TIME_MAX:
            values = check.values
            if values is None or values(record) is None:
                return None
    except (KeyError, TypeError):  # a field missing, a kind unknown or unhashable, not a map
        pass
    return _slow_problem(record)


def _slow_problem(record) -> str | None:
    if type(record) is not dict:
        return f"a {type(record).__name__}, not a map"
    kind = record.get("kind", _ABSENT)
    if type(kind) is not str:
        return "no 'kind'" if kind is _ABSENT else f"'kind' is {type(kind).__name__}, not str"
    check = CHECKS.get(kind)
    schema = _UNKNOWN_KIND if check is None else SCHEMA[kind]
    wrong = _type_problem(record, schema)
    if wrong is None:
        if check is not None and len(check.good) < _MAX_GOOD:
            check.good.add(tuple(map(type, map(record.get, schema, repeat(_ABSENT)))))
        for name in _MOMENTS.get(kind, ("time",)):
            moment = record.get(name)
            # NaN fails both comparisons.
            if moment is not None and not TIME_MIN <= moment < TIME_MAX:
                return f"{kind}: {name!r} {moment!r} is not a time between 1970 and 9999"
        values = None if check is None else check.values
        wrong = None if values is None else values(record)
    return None if wrong is None else f"{kind}: {wrong}"


class _Check:
    """A kind's fast path: a getter of its fields' values, and the type combinations found good.

    `width` is the number of fields of a closed record of the kind: one whose every value, down to
    the inside of its maps and lists, is checked here. A record of that width with the fields of the
    table and a good check is closed (0: the kind's records never are: a field may be absent, or a
    map or list is not checked inside). `inner` is the map field checked by its names, `inner_width`
    how many they are: its value is None or of that length.
    """

    __slots__ = ("get", "good", "clock", "values", "width", "inner", "inner_width")

    def __init__(self, kind: str, fields: dict[str, tuple[type, ...]]) -> None:
        # Every kind has two fields or more, so itemgetter returns a tuple. A field that may be
        # absent raises KeyError there: such records take the slow path (headers, rare).
        self.get = itemgetter(*fields)
        self.good: set[tuple[type, ...]] = set()
        self.clock = "time" if "time" in fields else "file_started"
        self.values = _VALUES.get(kind)
        self.inner, inner_fields = _INNER.get(kind, (None, {}))
        self.inner_width = len(inner_fields)
        closed = all(
            _Absent not in types and list not in types and (dict not in types or name == self.inner)
            for name, types in fields.items()
        )
        self.width = 1 + len(fields) if closed else 0  # with `kind`


# A log of every valid combination of types and extra fields stays below this; a hostile one
# cannot grow the set past it (records beyond it just take the slow path).
_MAX_GOOD = 4096
# Readers may inline problem()'s fast path with these (collector/logs/framing.py does).
CHECKS = {kind: _Check(kind, fields) for kind, fields in SCHEMA.items()}
