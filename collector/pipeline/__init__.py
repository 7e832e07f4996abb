# SPDX-License-Identifier: MIT
"""event → record: options decoded, connections and subflows tracked, log records made and written."""
