# SPDX-License-Identifier: MIT
"""The ADD_ADDR study over logs: one streaming pass over the records, figures as a plain dict.

`report(paths)` reproduces "A first look at multipath-tcp.org: ADD_ADDR usage": how many MPTCP
connections announced an address, and of what class the announced addresses were. docs/records.md is
the schema read here. Memory grows with the distinct connections and (connection, address) pairs,
never with the records: each record is looked at once and dropped.

A connection is (host, token), the host coming from the `header` record that opens each file, so
equal tokens in two hosts' logs stay two connections. An address counts once per connection whatever
the number of times it is announced (retransmissions, the same address on another subflow); echoes are
acknowledgements, not announcements, and never count; clients' and servers' announcements are counted
apart, by one `Announcements` each.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import partial
from itertools import chain
from pathlib import Path
from typing import NamedTuple

from collector.addresses.classes import ADDRESS_CLASSES
from collector.logs.directory import expand
from collector.logs.framing import DamageHandler
from collector.logs.reader import open_cursor, read_records, warn_damage
from collector.report.render import iso_time

FAMILIES = ("ipv4", "ipv6")
COLLECTOR_KINDS = frozenset({"stats", "lost"})
# Below this much log, starting worker processes costs more than it saves.
PARALLEL_BYTES = 32 * 2**20
# A bigger log file is read in parts of about this size, by as many processes: a few big files,
# or one, keep every CPU busy to the end.
PART_BYTES = 16 * 2**20
GLOBAL = "global"
# Study order for class dicts at equal counts; a class missing from the vocabulary sorts after them.
_CLASS_RANK = {name: rank for rank, name in enumerate(ADDRESS_CLASSES)}
_EPOCH = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")


def parse_time(text: str) -> float:
    """UTC epoch seconds of ISO 8601 (naive means UTC) or of a plain number of epoch seconds.

    A plain number is always epoch seconds, so the ISO basic form "20240501" is not taken as a date.
    """
    text = text.strip()
    if _EPOCH.fullmatch(text):
        return float(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"cannot read {text!r} as a time: give ISO 8601 (2024-05-01T12:00:00Z) or epoch seconds (1714564800)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _by_count(counts: dict[str, int]) -> dict[str, int]:
    """Largest first; ties in vocabulary order, so the same logs always give the same dict."""
    return dict(sorted(counts.items(), key=lambda item: (-item[1], _CLASS_RANK.get(item[0], math.inf), item[0])))


class FamilyClasses:
    """The classes of one family's distinct (connection, address) pairs, and of the IPv4 they embed."""

    __slots__ = ("addresses", "classes", "embedded")

    def __init__(self) -> None:
        self.addresses = 0
        self.classes: dict[str, int] = {}
        self.embedded: dict[str, int] = {}

    def count(self, address_class: str, embedded_class: str | None, pairs: int) -> None:
        """Counts `pairs` (connection, address) pairs of one address of `address_class` (and of
        `embedded_class`, that of the IPv4 address it carries, unless None)."""
        self.addresses += pairs
        self.classes[address_class] = self.classes.get(address_class, 0) + pairs
        if embedded_class is not None:
            self.embedded[embedded_class] = self.embedded.get(embedded_class, 0) + pairs

    def figures(self) -> dict:
        """The family's figures: the pairs, their classes largest first, the global share, the embedded classes."""
        return {
            "addresses": self.addresses,
            "classes": _by_count(self.classes),
            "global_share": _share(self.classes.get(GLOBAL, 0), self.addresses),
            "embedded": _by_count(self.embedded),
        }


class Announcements:
    """The non-echo ADD_ADDR options of one announcer side (client or server), over every host.

    Pairs are classed in figures(), not as they come: a class belongs to the address, so it is kept
    once per distinct address, and the per-record work stays a few dict probes.
    """

    __slots__ = ("announcements", "with_port", "classes", "by_host", "_host")

    def __init__(self) -> None:
        self.announcements = 0
        self.with_port = 0
        # address -> (family, class, class of the IPv4 address it embeds or None), as its record gave them
        self.classes: dict[str, tuple[str, str, str | None]] = {}
        # host -> token -> addresses announced on that connection
        self.by_host: dict[str | None, dict[int, set[str]]] = {}
        self._host: dict[int, set[str]] = {}

    def select_host(self, host: str | None) -> None:
        """The host whose records come next (from a `header`)."""
        self._host = self.by_host.setdefault(host, {})

    def add(self, record: dict) -> None:
        """Counts one announcement, and its (connection, address) pair once per connection and address."""
        self.announcements += 1
        if record["port"] is not None:
            self.with_port += 1
        token = record["connection"]
        if token is None:
            return  # not a connection's: counted as an announcement, no (connection, address) pair
        address = record["address"]
        addresses = self._host.get(token)
        if addresses is not None and address in addresses:
            return  # a retransmission, or the same address again on another subflow
        # One object per distinct address, not one per record: a worker's state then pickles (and
        # the parent unpickles) each address once.
        address = sys.intern(address)
        if addresses is None:
            self._host[token] = {address}
        else:
            addresses.add(address)
        if address not in self.classes:
            embedded = record["embedded_ipv4"]
            embedded_class = None if embedded is None else embedded["class"]
            self.classes[address] = (record["family"], record["class"], embedded_class)

    def merge(self, other: Announcements) -> None:
        """Adds `other`'s announcements, taking its sets over (other is used up)."""
        self.announcements += other.announcements
        self.with_port += other.with_port
        for address, classes in other.classes.items():
            self.classes.setdefault(address, classes)
        for host, connections in other.by_host.items():
            mine = self.by_host.setdefault(host, {})
            # Few connections are in both (one cut between two parts of a file): a dict update, in
            # C, takes the others.
            for token in connections.keys() & mine.keys():
                connections[token] |= mine[token]
            mine.update(connections)

    def figures(self) -> dict:
        """The side's figures: its announcements, then per family the classes of its distinct pairs."""
        families = {family: FamilyClasses() for family in FAMILIES}
        # Connections are many, distinct addresses few: count the pairs of each address, then class it once.
        pairs = Counter(chain.from_iterable(chain.from_iterable(map(dict.values, self.by_host.values()))))
        for address, count in pairs.items():
            family, address_class, embedded_class = self.classes[address]
            families[family].count(address_class, embedded_class, count)
        return {
            "announcements": self.announcements,
            **{family: counts.figures() for family, counts in families.items()},
        }


class Report:
    """Feed it records with consume(), as many batches as wanted; figures() gives the report dict.

    Records are kept only if `since` <= time < `until` (epoch seconds; None: unbounded), so that
    consecutive windows split a log without counting a record twice. Headers are always read: they
    name the host of the records that follow.
    """

    def __init__(self, since: float | None = None, until: float | None = None) -> None:
        self.since = -math.inf if since is None else since
        self.until = math.inf if until is None else until
        self.client = Announcements()
        self.server = Announcements()
        self.attempts = 0
        self.unattributed = 0
        self.lost_events = 0
        self.first_seen = math.inf
        self.last_seen = -math.inf
        # host -> token -> MPTCP version of each connection whose MP_CAPABLE exchange completed
        self.connections: dict[str | None, dict[int, int]] = {}
        self._host_connections: dict[int, int] = {}
        self._bind()

    def _bind(self) -> None:
        self._announce = {"client": self.client.add, "server": self.server.add}
        # Only the kinds the figures need; the others are only looked at for their time.
        self._handlers = {
            "add_addr": self._add_addr,
            "connection": self._connection,
            "attempt": self._attempt,
            "lost": self._lost,
        }
        self._select_host(None)  # records before any header (a bare file) belong to an unnamed host

    # A worker process hands its Report back pickled: the bound handlers are rebuilt, not sent.
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_announce", "_handlers", "_host_connections")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._bind()

    def merge(self, other: Report) -> None:
        """Adds what `other` read (other files of the same logs, with the same window)."""
        self.client.merge(other.client)
        self.server.merge(other.server)
        self.attempts += other.attempts
        self.unattributed += other.unattributed
        self.lost_events += other.lost_events
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)
        for host, connections in other.connections.items():
            mine = self.connections.setdefault(host, {})
            # The version first seen stays: other's only for the connections new here.
            new = connections.keys() - mine.keys()
            mine.update(zip(new, map(connections.__getitem__, new)))

    def consume(self, records: Iterable[dict]) -> None:
        """Reads `records` into the figures: those inside the window, and the headers, which name the host."""
        # Hot loop: locals only, one dict probe to dispatch, no object made per record.
        handlers = self._handlers
        since, until = self.since, self.until
        first, last = self.first_seen, self.last_seen
        for record in records:
            time = record.get("time")
            if time is None:
                # Only the header has no time (it has file_started): it names the host.
                if record.get("kind") == "header":
                    self._select_host(record.get("host"))
                continue
            if not since <= time < until:
                continue
            kind = record["kind"]
            # The collector's own records carry its wall clock, which in a replay is not the
            # capture's: first and last seen span the traffic.
            if kind not in COLLECTOR_KINDS:
                if time < first:
                    first = time
                if time > last:
                    last = time
            handler = handlers.get(kind)
            if handler is not None:
                handler(record)
        self.first_seen, self.last_seen = first, last

    def _select_host(self, host: str | None) -> None:
        self.host = host
        self._host_connections = self.connections.setdefault(host, {})
        self.client.select_host(host)
        self.server.select_host(host)

    def _add_addr(self, record: dict) -> None:
        if record["echo"]:
            return
        if record["connection"] is None:
            self.unattributed += 1
        announce = self._announce.get(record["announcer"])
        if announce is not None:  # None: an unknown subflow's, whose announcer is unknown too
            announce(record)

    def _connection(self, record: dict) -> None:
        self._host_connections.setdefault(record["connection"], record["version"])

    def _attempt(self, record: dict) -> None:
        self.attempts += 1

    def _lost(self, record: dict) -> None:
        self.lost_events += record["count"]

    def figures(self) -> dict:
        """The report: the figures of the records consumed so far, as `addaddr report --format json` prints them."""
        connections = sum(map(len, self.connections.values()))
        # Only connections seen to start: with --since, one that started before still announces
        # inside the window, and counting it would let the share pass 100%.
        announcing = sum(
            len(tokens.keys() & self.connections.get(host, {}).keys()) for host, tokens in self.client.by_host.items()
        )
        versions = {"v0": 0, "v1": 0}
        for host_connections in self.connections.values():
            for version in host_connections.values():
                name = f"v{version}"
                versions[name] = versions.get(name, 0) + 1
        client = self.client.figures()
        return {
            "connections": connections,
            "attempts": self.attempts,
            "connections_announcing": announcing,
            "connections_announcing_share": _share(announcing, connections),
            "announcements": client["announcements"],
            "ipv4": client["ipv4"],
            "ipv6": client["ipv6"],
            "distinct_addresses": len(self.client.classes),
            "with_port": self.client.with_port,
            "versions": versions,
            "server_announced": self.server.figures(),
            "unattributed": self.unattributed,
            "lost_events": self.lost_events,
            "first_seen": iso_time(self.first_seen) if self.first_seen != math.inf else None,
            "last_seen": iso_time(self.last_seen) if self.last_seen != -math.inf else None,
        }


def report(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    since: float | None = None,
    until: float | None = None,
    on_damage: DamageHandler | None = None,
) -> dict:
    """The figures of the log directories (or files) `paths`.

    Each log file starts with its header and so stands alone: big logs are read on every CPU, a
    process per part of a file, and the states merged in file order. Decoding msgpack is most of the
    work and it does not go faster in one process.
    """
    files = expand(paths)
    total = Report(since, until)
    sizes = list(map(_size, files))
    plan = [(path, size, max(1, size // PART_BYTES)) for path, size in zip(files, sizes)]
    tasks = [_Task(path, size, index, count) for path, size, count in plan for index in range(count)]
    workers = min(os.cpu_count() or 1, len(tasks))
    if workers < 2 or sum(sizes) < PARALLEL_BYTES:
        total.consume(read_records(files, on_damage=on_damage))
        return total.figures()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        done = pool.imap(partial(_read_part, since=since, until=until), tasks)
        for path, _, count in plan:
            parts = [next(done) for _ in range(count)]
            if not _joined(parts):
                # Damage where the file was cut, or a second header: only one pass from the start
                # reads it as `tail` does.
                parts = [_read_part(_Task(path, 0, 0, 1), since=since, until=until)]
            for part in parts:
                total.merge(part.report)
                for where in part.damage:
                    (on_damage or warn_damage)(*where)
    return total.figures()


def _size(path: Path) -> int:
    # Without following links: the reader opens none, and a dangling one must not stop the report.
    try:
        return path.lstat().st_size
    except OSError:
        return 0


class _Task(NamedTuple):
    """Part `index` of `count` of a log file of `size` bytes."""

    path: Path
    size: int
    index: int
    count: int


class _Part(NamedTuple):
    """What a worker read of its part of a file, and how it may join the parts around it."""

    report: Report
    damage: list[tuple]
    start: int | None  # the first frame read (None: the part could not be read apart from the rest)
    end: int | None  # where reading stopped
    host_before: str | None  # the host named by the file's header
    host_after: str | None  # the host of the last records read


def _joined(parts: list[_Part]) -> bool:
    """Whether the parts read one file as a single pass from its start would: each ends exactly where
    the next starts, in the state (no damage being skipped, the same host) the next starts in."""
    if any(part.start is None for part in parts):
        return False
    return all(
        before.end == after.start and before.host_after == after.host_before for before, after in zip(parts, parts[1:])
    )


def _read_part(task: _Task, *, since: float | None, until: float | None) -> _Part:
    damage: list[tuple] = []
    part = Report(since, until)
    if task.count == 1:
        part.consume(read_records([task.path], on_damage=lambda *where: damage.append(where)))
        return _Part(part, damage, 0, None, None, None)
    apart = _Part(part, damage, None, None, None, None)
    cursor = open_cursor(task.path, lambda *where: damage.append(where))
    if cursor is None:
        return apart
    with cursor:
        # Every part starts at a frame the reader takes whole, after the file's header: the host.
        cursor.part_end = 1
        first = cursor.records(final=True)
        if cursor.format != 2:
            return apart
        header = list(first)
        if damage or len(header) != 1 or header[0]["kind"] != "header":
            return apart
        bounds = [
            cursor.offset if index == 0 else cursor.frame_from(task.size * index // task.count)
            for index in (task.index, task.index + 1)
        ]
        if task.index + 1 == task.count:
            bounds[1] = None  # the last part reads to the end, whatever was appended since
        elif bounds[1] is None:
            return apart
        if bounds[0] is None:
            return apart
        cursor.offset, cursor.part_end = bounds
        part.consume(chain(header, cursor.records(final=True)))
        return _Part(part, damage, bounds[0], cursor.offset, header[0].get("host"), part.host)
