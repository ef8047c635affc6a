"""Plain-text tables for the command line: columns padded to their widest cell."""

from __future__ import annotations


def align_columns(rows: list[list[str]]) -> str:
    """``rows`` (the header first, every row as long) as lines of columns two spaces apart,
    each padded to its widest cell, trailing spaces removed."""
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
