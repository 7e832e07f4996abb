# SPDX-License-Identifier: MIT
"""Real kernel MPTCP in namespaces to try the collector on: the demo, its testbed, traffic replay."""
