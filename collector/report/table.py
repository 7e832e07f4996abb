# SPDX-License-Identifier: MIT
"""Rows laid out in aligned columns, as the table outputs of `classify` and `report` print them."""

from collections.abc import Sequence


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """`rows` under `header` in left-aligned columns two spaces apart, with no trailing spaces."""
    widths = [max(map(len, column)) for column in zip(header, *rows)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in (header, *rows)
    )
