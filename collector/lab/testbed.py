# SPDX-License-Identifier: MIT
"""A namespace testbed of real kernel MPTCP: one server, clients that announce addresses of many classes.

Network rule: traffic stays inside the namespaces made here. None has a default route, the server
accepts no announced address (add_addr_accepted 0), so no subflow is ever tried toward one; joins
come only from each client's join address, on the client's own link. Names carry a unique prefix and
`Testbed` removes everything it made on exit, error and Ctrl-C included.
"""

from __future__ import annotations

import errno
import secrets
import socket
import struct
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from collector.kernel.netns import socket_in
from collector.lab.tun_wire import TunWire, open_tun

IPPROTO_MPTCP = 262
SOL_MPTCP = 284
MPTCP_INFO = 1
# struct mptcp_info (uapi/linux/mptcp.h) up to mptcpi_token.
_MPTCP_INFO_HEAD = struct.Struct("=BBBBBBxxII")
# The in-kernel path manager keeps at most 8 endpoints per namespace: 7 announced plus the join one.
MAX_ANNOUNCED_PER_CLIENT = 7
PORT = 5201
NAME_PREFIX = "aa"
# How long one step of a test connection (connect, an echo round trip, the wait for its announcements,
# the server's token) may take before it counts as failed. Generous on purpose: under software emulation
# on a loaded machine (scripts/vm-test's guests) single round trips took over 5 s, while a healthy
# connection finishes each step in milliseconds here and never waits for it; a real hang still fails, well
# inside each test's pytest-timeout.
STEP_TIMEOUT = 30.0


@dataclass(frozen=True)
class ClientPlan:
    """What one client namespace announces (its `signal` endpoints)."""

    announce: tuple[str, ...]


# The kinds the study tabulated, and their neighbours. The global ones are announced, never contacted:
# 198.20.0.1 sits just past 198.18/15, 3ffe::1 in the returned 6bone block.
DEFAULT_PLANS = (
    ClientPlan(("10.1.2.3", "192.168.7.9", "172.16.5.4", "169.254.3.4", "100.64.1.2", "198.20.0.1", "203.0.113.7")),
    ClientPlan(
        (
            "fe80::abcd",
            "2001:db8::5",
            "::10.1.2.3",
            "2002:c000:201::1",
            "fd12:3456::1",
            "3ffe::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        )
    ),
)


@dataclass(frozen=True)
class Link:
    """Client i's link to the server, and the address its join subflows come from."""

    server_if: str
    client_if: str
    server4: str
    client4: str
    server6: str
    client6: str
    join4: str


@dataclass
class ConnectionSeen:
    """One MPTCP connection as both ends' sockets reported it."""

    client: int
    family: int
    client_end: tuple[str, int]  # the initial subflow's client address and port
    announced: int
    subflows: int
    token: int = 0  # the server's token: the collector's connection id


@dataclass
class Traffic:
    """What drive() made: the connections as both ends reported them, and one line per connection that
    failed."""

    connections: list[ConnectionSeen] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def _mptcp_info(sock: socket.socket) -> tuple[int, int, int, int]:
    """(additional subflows, addresses signalled, addresses to signal, token)."""
    raw = sock.getsockopt(SOL_MPTCP, MPTCP_INFO, 64)
    subflows, signalled, _, _, signal_max, _, _, token = _MPTCP_INFO_HEAD.unpack_from(raw)
    return subflows, signalled, signal_max, token


class Testbed:
    """Server and client namespaces joined by veth pairs; use as a context manager."""

    __test__ = False  # not a pytest class, despite the name

    def __init__(
        self, plans: tuple[ClientPlan, ...] = DEFAULT_PLANS, name: str | None = None, tun: bool = False
    ) -> None:
        """`tun` joins each client to the server by a pair of tun devices and a wire between them
        (collector.lab.tun_wire): links without an Ethernet header, as behind a VPN."""
        for plan in plans:
            if len(plan.announce) > MAX_ANNOUNCED_PER_CLIENT:
                raise ValueError(f"a client announces at most {MAX_ANNOUNCED_PER_CLIENT} addresses")
        # Short enough for interface names (15 bytes): "aa" + 6 hex + "s" + index.
        self.name = name or f"{NAME_PREFIX}{secrets.token_hex(3)}"
        self.plans = plans
        self.server = f"{self.name}-srv"
        self.clients = [f"{self.name}-c{i}" for i in range(len(plans))]
        self.links = [
            Link(
                f"{self.name}s{i}",
                f"{self.name}c{i}",
                f"10.200.{i}.1",
                f"10.200.{i}.2",
                f"fd00:200:{i}::1",
                f"fd00:200:{i}::2",
                f"10.201.{i}.2",
            )
            for i in range(len(plans))
        ]
        self._made: list[str] = []
        self.tun = tun
        self._wires: list[TunWire] = []

    @property
    def server_interfaces(self) -> list[str]:
        """The server's end of each client's link: the interfaces a collector watches."""
        return [link.server_if for link in self.links]

    def __enter__(self) -> Testbed:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def up(self) -> None:
        """Makes the namespaces, each client's link with its addresses, and the MPTCP endpoints that announce
        them; `with` calls it, and down() if it fails."""
        for ns in (self.server, *self.clients):
            _ip("netns", "add", ns)
            self._made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", self.server, "mptcp", "limits", "set", "add_addr_accepted", "0", "subflows", "8")
        for client, link, plan in zip(self.clients, self.links, self.plans):
            self._link_up(client, link, plan)

    def _link_up(self, client: str, link: Link, plan: ClientPlan) -> None:
        if self.tun:
            server_end = open_tun(self.server, link.server_if)
            self._wires.append(TunWire(server_end, open_tun(client, link.client_if)))
        else:
            _ip(
                "link",
                "add",
                link.server_if,
                "netns",
                self.server,
                "type",
                "veth",
                "peer",
                "name",
                link.client_if,
                "netns",
                client,
            )
        srv, cli = ("-n", self.server), ("-n", client)
        _ip(*srv, "link", "set", link.server_if, "up")
        _ip(*cli, "link", "set", link.client_if, "up")
        _ip(*srv, "addr", "add", f"{link.server4}/24", "dev", link.server_if)
        _ip(*srv, "addr", "add", f"{link.server6}/64", "dev", link.server_if, "nodad")
        _ip(*cli, "addr", "add", f"{link.client4}/24", "dev", link.client_if)
        _ip(*cli, "addr", "add", f"{link.client6}/64", "dev", link.client_if, "nodad")
        # The join address gets a route back from the server over this link only.
        _ip(*cli, "addr", "add", f"{link.join4}/24", "dev", link.client_if)
        _ip(*srv, "route", "add", link.join4.rsplit(".", 1)[0] + ".0/24", "dev", link.server_if)
        for address in plan.announce:
            prefix = "/128" if ":" in address else "/32"
            _ip(*cli, "addr", "add", address + prefix, "dev", link.client_if, *(["nodad"] if ":" in address else []))
            _ip(*cli, "mptcp", "endpoint", "add", address, "signal")
        _ip(*cli, "mptcp", "endpoint", "add", link.join4, "dev", link.client_if, "subflow")
        _ip(*cli, "mptcp", "limits", "set", "add_addr_accepted", "0", "subflows", "2")

    def down(self) -> None:
        """Removes every namespace made (their veths go with them) and every tun wire; safe to call
        twice."""
        while self._wires:
            self._wires.pop().close()
        while self._made:
            subprocess.run(["ip", "netns", "del", self._made.pop()], capture_output=True)

    def drive(self, connections: int, *, concurrency: int = 8, timeout: float = STEP_TIMEOUT) -> Traffic:
        """`connections` MPTCP connections per client and family, each kept open until the client has
        announced all its addresses and, over IPv4, its join subflow is up."""
        traffic = Traffic()
        lock = threading.Lock()
        with _EchoServer(self.server, timeout) as server:
            jobs = [
                (i, family)
                for i in range(len(self.clients))
                for family in (socket.AF_INET, socket.AF_INET6)
                for _ in range(connections)
            ]
            with ThreadPoolExecutor(concurrency) as pool:
                for seen in pool.map(lambda job: self._connect(*job, timeout), jobs):
                    with lock:
                        if isinstance(seen, str):
                            traffic.failures.append(seen)
                        else:
                            traffic.connections.append(seen)
            for seen in traffic.connections:
                seen.token = server.token_for(seen.client_end)
        return traffic

    def _connect(self, client: int, family: int, timeout: float) -> ConnectionSeen | str:
        link = self.links[client]
        server = link.server4 if family == socket.AF_INET else link.server6
        try:
            with socket_in(self.clients[client], family, socket.SOCK_STREAM, IPPROTO_MPTCP) as sock:
                sock.settimeout(timeout)
                sock.connect((server, PORT))
                deadline = time.monotonic() + timeout
                # The join endpoint is IPv4: IPv6 connections get no join subflow.
                joins = 1 if family == socket.AF_INET else 0
                while True:
                    sock.sendall(b"ping")
                    sock.recv(64)
                    subflows, signalled, signal_max, _ = _mptcp_info(sock)
                    if (signalled >= signal_max and subflows >= joins) or time.monotonic() > deadline:
                        break
                    time.sleep(0.005)
                # One more round trip, so the last announcement leaves before the close.
                sock.sendall(b"last")
                sock.recv(64)
                return ConnectionSeen(client, family, sock.getsockname()[:2], signalled, subflows)
        except OSError as exc:
            return f"client {client} to {server}: {exc}"


def _bind(sock: socket.socket, address: str, deadline: float) -> None:
    # Seen under load (tests/live/test_crash_safety's back-to-back drives): EADDRINUSE for a moment after the
    # previous drive's listener closed, while its MPTCP connections are still being torn down.
    while True:
        try:
            sock.bind((address, PORT))
            return
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


class _EchoServer:
    """Echo listeners (IPv4 and IPv6) in the server namespace; learns each connection's token."""

    def __init__(self, netns: str, timeout: float) -> None:
        self._listeners = []
        for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            sock = socket_in(netns, family, socket.SOCK_STREAM, IPPROTO_MPTCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            _bind(sock, address, time.monotonic() + timeout)
            sock.listen(128)
            sock.settimeout(0.2)
            self._listeners.append(sock)
        self._timeout = timeout
        self._tokens: dict[tuple[str, int], int] = {}
        self._arrived = threading.Condition()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, args=(s,), daemon=True) for s in self._listeners]

    def __enter__(self) -> _EchoServer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for sock in self._listeners:
            sock.close()

    def token_for(self, client_end: tuple[str, int]) -> int:
        """The server's token for the connection whose initial subflow came from `client_end`."""
        with self._arrived:
            self._arrived.wait_for(lambda: client_end in self._tokens, timeout=self._timeout)
            return self._tokens.get(client_end, 0)

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._echo, args=(conn, peer), daemon=True).start()

    def _echo(self, conn: socket.socket, peer) -> None:
        with conn:
            with self._arrived:
                self._tokens[peer[:2]] = _mptcp_info(conn)[3]
                self._arrived.notify_all()
            conn.settimeout(self._timeout)
            try:
                while data := conn.recv(4096):
                    conn.sendall(data)
            except OSError:
                pass
