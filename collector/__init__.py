# SPDX-License-Identifier: MIT
"""addaddr: an eBPF collector of MPTCP ADD_ADDR announcements; map of the modules in docs/architecture.md.
Data path, a folder per step: packet (bpf/) -> event (kernel/) -> record (pipeline/) -> log (logs/) -> report (report/).
Layers, imports one way: cli.py (click only) -> commands/ (one module per command) -> the library's folders."""

__version__ = "0.1.0"
