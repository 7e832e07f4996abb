# SPDX-License-Identifier: MIT
"""collector.kernel.link_layer: whether a device's frames begin with an Ethernet header, told by its link
type, and the one error for a type that is neither Ethernet nor raw IP."""

import pytest

from collector.errors import CollectorError
from collector.kernel.link_layer import has_ethernet_header

ARPHRD_NONE, ARPHRD_ETHER, ARPHRD_IEEE80211_RADIOTAP = 0xFFFE, 1, 803


def test_link_types():
    assert has_ethernet_header("eth0", ARPHRD_ETHER) and not has_ethernet_header("wg0", ARPHRD_NONE)
    with pytest.raises(CollectorError, match=r"mon0: link type 803 .* is neither Ethernet nor raw IP"):
        has_ethernet_header("mon0", ARPHRD_IEEE80211_RADIOTAP)
