"""Markdown tables for reports and the terminal."""

from __future__ import annotations

from typing import Any, Sequence


def table(header: Sequence[Any], rows: Sequence[Sequence[Any]], aligned: bool = False) -> str:
    """A GitHub-flavoured markdown table; a None cell is empty.

    `aligned`: pad every column to its widest cell, the first column left-aligned and the others
    right-aligned, so that it also reads as a table in a terminal.
    """
    cells = [[str("" if v is None else v) for v in row] for row in [header, *rows]]
    if not aligned:
        lines = ["| " + " | ".join(row) + " |" for row in cells]
        lines.insert(1, "|" + "|".join("---" for _ in header) + "|")
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        padded = (v.rjust(w) if n and i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths)))
        lines.append("| " + " | ".join(padded) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
