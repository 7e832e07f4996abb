# SPDX-License-Identifier: MIT
"""What a device's packets start with at TC ingress, from its type (ARPHRD_*, linux/if_arp.h): an
Ethernet header, or the IP header itself (the stack gives such devices a zero-length link header)."""

from __future__ import annotations

from collector.errors import CollectorError

ETHERNET_TYPES = {
    1: "ether",  # Ethernet, veth, bridges, VLAN, macvlan, vxlan, gretap
    772: "loopback",  # a 14-byte header of zero addresses
}
RAW_IP_TYPES = {
    0xFFFE: "none",  # tun, WireGuard, xfrm interfaces
    512: "ppp",
    519: "rawip",  # cellular modems (qmi_wwan, rmnet)
    768: "tunnel",  # ipip, vti
    769: "tunnel6",  # ip6tnl
    776: "sit",
    778: "ipgre",
    823: "ip6gre",
}


def has_ethernet_header(ifname: str, link_type: int) -> bool:
    """True for Ethernet-framed devices, False for raw-IP ones; CollectorError for any other type,
    whose frames the program cannot parse."""
    if link_type in ETHERNET_TYPES:
        return True
    if link_type in RAW_IP_TYPES:
        return False
    raise CollectorError(
        f"{ifname}: link type {link_type} (see ARPHRD_* in linux/if_arp.h) is neither Ethernet "
        "nor raw IP, and addaddr cannot parse its frames; watch the Ethernet or IP device "
        "that carries its traffic"
    )
