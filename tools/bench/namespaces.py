# SPDX-License-Identifier: MIT
"""Two network namespaces joined by one veth pair, made for a benchmark and always removed after it.

Network rule: the traffic stays inside: neither namespace has a route beyond its own /24, and the
namespaces (with their veths) are deleted on leaving the block, error, Ctrl-C and SIGTERM or SIGHUP
included (scripts/bench turns those into KeyboardInterrupt); only SIGKILL leaves them, named on stderr.
"""

from __future__ import annotations

import secrets
import subprocess
import sys

SENDER_ADDRESS = "10.251.0.1"
RECEIVER_ADDRESS = "10.251.0.2"


def ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


class VethPair:
    """`sender` and `receiver` namespaces; `sender_if` and `receiver_if` the two ends of the veth."""

    def __init__(self) -> None:
        name = f"ab{secrets.token_hex(3)}"  # unique, and short enough for interface names
        self.sender, self.receiver = f"{name}-tx", f"{name}-rx"
        self.sender_if, self.receiver_if = f"{name}t", f"{name}r"
        self._made: list[str] = []

    def __enter__(self) -> VethPair:
        try:
            for ns in (self.sender, self.receiver):
                # Listed first: a signal right after `ip netns add` must not leave it unlisted. Unlisted
                # again when ip refuses: the name may be another's (it exists already).
                self._made.append(ns)
                try:
                    ip("netns", "add", ns)
                except RuntimeError:
                    self._made.pop()
                    raise
                ip("-n", ns, "link", "set", "lo", "up")
            ip(
                "link",
                "add",
                self.sender_if,
                "netns",
                self.sender,
                "type",
                "veth",
                "peer",
                "name",
                self.receiver_if,
                "netns",
                self.receiver,
            )
            for ns, ifname, address in (
                (self.sender, self.sender_if, SENDER_ADDRESS),
                (self.receiver, self.receiver_if, RECEIVER_ADDRESS),
            ):
                ip("-n", ns, "addr", "add", f"{address}/24", "dev", ifname)
                ip("-n", ns, "link", "set", ifname, "up")
            # In the try: a signal while printing comes before `with` has taken __exit__ on.
            print(f"bench: namespaces {self.sender} and {self.receiver}", file=sys.stderr, flush=True)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        while self._made:
            ns = self._made.pop()
            removed = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True)
            if (
                removed.returncode != 0
                and ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
            ):
                print(
                    f"bench: namespace {ns} left: {removed.stderr.strip()}; remove it with ip netns del {ns}",
                    file=sys.stderr,
                    flush=True,
                )

    def run_in(self, netns: str, *command: str) -> list[str]:
        """`command` run inside `netns`."""
        return ["ip", "netns", "exec", netns, *command]
