# SPDX-License-Identifier: MIT
"""Live MPTCP in network namespaces made by the tests, the collector attached to real interfaces (root)."""
