"""Iteration helpers."""

from __future__ import annotations

import pytest

from munet.iterutils import chunked


def test_chunked_keeps_order_and_a_short_last_chunk():
    assert list(chunked(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunked(iter([]), 4)) == []
    with pytest.raises(ValueError, match="at least 1"):
        list(chunked(range(3), 0))
