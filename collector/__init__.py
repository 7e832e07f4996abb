"""addaddr: an eBPF collector of MPTCP ADD_ADDR announcements."""

__version__ = "0.1.0"
