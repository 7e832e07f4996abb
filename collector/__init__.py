"""addaddr: an eBPF collector of MPTCP ADD_ADDR announcements; map of the modules in docs/architecture.md.
Data path: packet (bpf/) -> event (event.py) -> record (records.py) -> log (logfile.py) -> report (report.py).
Layers, imports one way: cli.py (click only) -> commands/ (one module per command) -> this library."""

__version__ = "0.1.0"
