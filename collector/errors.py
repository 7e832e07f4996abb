# SPDX-License-Identifier: MIT
"""The one exception the CLI turns into a one-line message and a non-zero exit."""


class CollectorError(Exception):
    """Something the user can fix; the message says what and, where it can, how."""
