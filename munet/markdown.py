"""Markdown tables: the one writer behind every report (evaluation, sweep results, ablation, learning
benchmark)."""

from __future__ import annotations

from collections.abc import Sequence


def escape_cell(text: str) -> str:
    """``text`` made safe for one table cell: ``|`` escaped, line breaks turned into spaces."""
    return " ".join(text.split("\n")).replace("|", "\\|")


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | Sequence[str] = "l") -> list[str]:
    """The lines of a Markdown table (without a trailing blank line).

    Args:
        header: the column titles.
        rows: the cells of each row, already formatted, one per column (escape free text with
            :func:`escape_cell`).
        align: ``"l"`` (left) or ``"r"`` (right) for every column, or one letter per column
            (``"lrr"``).

    Raises:
        ValueError: a row or ``align`` does not have one entry per column, or an unknown alignment.
    """
    width = len(header)
    letters = [align] * width if len(align) == 1 else list(align)
    if len(letters) != width or any(letter not in ("l", "r") for letter in letters):
        raise ValueError(f"align needs 'l' or 'r' for each of the {width} columns, got {align!r}")
    for row in rows:
        if len(row) != width:
            raise ValueError(f"a table row has {len(row)} cells for {width} columns: {list(row)}")
    rule = "|" + "".join("---:|" if letter == "r" else "---|" for letter in letters)
    return ["| " + " | ".join(header) + " |", rule, *("| " + " | ".join(row) + " |" for row in rows)]
