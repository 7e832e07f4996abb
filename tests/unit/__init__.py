# SPDX-License-Identifier: MIT
"""Pure Python: no root, no kernel program, no namespace."""
