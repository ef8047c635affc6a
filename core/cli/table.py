"""Plain-text tables for the command line: columns padded to their widest cell, and a sweep's
ranked table."""

from __future__ import annotations

import math

from ..sweep.grid import Axis, PointResult, rank, show_value
from .console import hms


def align_columns(rows: list[list[str]]) -> str:
    """``rows`` (the header first, every row as long) as lines of columns two spaces apart,
    each padded to its widest cell, trailing spaces removed."""
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def sweep_table(results: list[PointResult], axes: list[Axis]) -> str:
    """The ranked table the command line prints: rank, each axis's value, status, best
    validation loss (nats and bits per character), steps, chars/s, time, run id; and the host
    that trained each point when they ran on a cluster."""
    hosts = any(r.host for r in results)
    rows = [["#", *(a.label for a in axes), "status", "best val", "bits/char", "steps",
             "chars/s", "time", "run", *(["host"] if hosts else [])]]  # fmt: skip
    for i, r in enumerate(rank(results), 1):
        best = r.best_val_loss
        rows.append(
            [
                str(i) if r.ok else "-",
                *(show_value(r.changes[a.field]) for a in axes),
                r.status,
                "-" if best is None else f"{best:.4f}",
                "-" if best is None else f"{best / math.log(2):.4f}",
                f"{r.steps:,}",
                "-" if r.chars_per_sec is None else f"{r.chars_per_sec:,.0f}",
                hms(r.duration_s),
                "-" if r.run_id is None else str(r.run_id),
                *([r.host or "-"] if hosts else []),
            ]
        )
    notes = [f"  {r.label}: {r.status}: {r.message}" for r in rank(results) if r.message]
    return "\n".join([align_columns(rows), *(["", "notes:", *notes] if notes else [])])
