"""The one Markdown table writer."""

from __future__ import annotations

import pytest

from munet.markdown import escape_cell, table


def test_table_has_header_rule_and_rows_aligned_per_column():
    lines = table(["name", "value", "note"], [["a", "1.5", "x"], ["b", "20", ""]], align="lrl")
    assert lines == ["| name | value | note |", "|---|---:|---|", "| a | 1.5 | x |", "| b | 20 |  |"]
    assert table(["n"], [], align="r") == ["| n |", "|---:|"]


def test_rows_and_alignment_must_fit_the_columns():
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        table(["a", "b", "c"], [["1", "2"]])
    with pytest.raises(ValueError, match="align needs"):
        table(["a", "b"], [], align="lrr")
    with pytest.raises(ValueError, match="align needs"):
        table(["a"], [], align="c")


def test_free_text_cannot_break_a_row():
    assert escape_cell("a | b\ntraceback") == "a \\| b traceback"
    row = table(["note"], [[escape_cell("x|y\nz")]])[-1]
    assert row.count(" | ") == 0 and row == "| x\\|y z |"
