"""Two network namespaces joined by one veth pair, made for a benchmark and always removed after it.

Network rule: the traffic stays inside: neither namespace has a route beyond its own /24, and the
namespaces (with their veths) are deleted on leaving the block, error or Ctrl-C included.
"""

from __future__ import annotations

import secrets
import subprocess

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

    def __enter__(self) -> "VethPair":
        try:
            for ns in (self.sender, self.receiver):
                ip("netns", "add", ns)
                self._made.append(ns)
                ip("-n", ns, "link", "set", "lo", "up")
            ip("link", "add", self.sender_if, "netns", self.sender, "type", "veth",
               "peer", "name", self.receiver_if, "netns", self.receiver)
            for ns, ifname, address in ((self.sender, self.sender_if, SENDER_ADDRESS),
                                        (self.receiver, self.receiver_if, RECEIVER_ADDRESS)):
                ip("-n", ns, "addr", "add", f"{address}/24", "dev", ifname)
                ip("-n", ns, "link", "set", ifname, "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        while self._made:
            subprocess.run(["ip", "netns", "del", self._made.pop()], capture_output=True)

    def run_in(self, netns: str, *command: str) -> list[str]:
        """`command` run inside `netns`."""
        return ["ip", "netns", "exec", netns, *command]
