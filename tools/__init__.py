# SPDX-License-Identifier: MIT
"""Code the commands in scripts/ run: the benchmarks and the dashboard renderer."""
