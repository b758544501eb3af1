"""Wavefront OBJ text of a triangle mesh, formatted by NumPy.

The text is exactly what ``"v %.6f %.6f %.6f"`` and ``"f %d %d %d"`` lines give (Python's
correctly rounded formatting, ties to even, ``-0.000000`` for negative values that round to zero),
but built as one byte matrix for all numbers instead of one Python conversion per number: each
number is a fixed-width row of ASCII digits whose unused leading places hold NUL bytes, which are
dropped at the end. That is exact for float32 coordinates (the network's output): a float32 times
10⁶ is exact in float64 (24 + 14 significant bits), so rounding it to an integer rounds the decimal
value itself. Other coordinates (float64 ones that float32 does not hold, non-finite or beyond
10⁹ m) are formatted by Python, with the same result.
"""

from __future__ import annotations

import functools

import numpy as np

OBJ_HEADER = "MuNet prediction; camera frame (OpenCV: x right, y down, z forward), metres"
"""The comment on the first line of every OBJ file written for a prediction."""
DECIMALS = 6
"""Digits after the decimal point of a coordinate: metres at 1 µm resolution."""
_EXACT_BELOW = 1e9
"""Coordinates below this magnitude (metres) give micrometre counts under 2⁵³: exact int64 and float64."""
_NUL = 0


def _digit_columns(values: np.ndarray, width: int, leading_zeros: bool) -> np.ndarray:
    """``(N,)`` non-negative integers below ``10**width`` → ``(N, width)`` uint8 ASCII digits, most
    significant first; without ``leading_zeros`` their places hold NUL (the last digit always stays).

    One division by 10 per column (a scalar divisor, which NumPy divides fast), in int32 when the
    values allow it (twice as fast as int64)."""
    quotient = values.astype(np.int32 if values.max(initial=0) < 2**31 else np.int64)
    digits = np.empty((len(values), width), np.uint8)
    for column in range(width - 1, -1, -1):
        quotient, digits[:, column] = np.divmod(quotient, 10)
    digits += ord("0")
    if not leading_zeros:
        for column in range(width - 1):
            digits[values < 10 ** (width - 1 - column), column] = _NUL
    return digits


def _number_fields(magnitudes: np.ndarray, negative: np.ndarray, decimals: int) -> np.ndarray:
    """Fixed-width ASCII fields ``(N, W)`` uint8 of the numbers ``±magnitude / 10**decimals``.

    Each row is a sign place (``-`` or NUL), the integer digits without leading zeros (NUL in their
    place, at least one digit), then, for ``decimals > 0``, ``.`` and ``decimals`` digits.

    Args:
        magnitudes: ``(N,)`` non-negative int64, the numbers' absolute values in units of
            ``10**-decimals``.
        negative: ``(N,)`` bool, which numbers get a minus sign.
        decimals: digits after the decimal point (0: integers, no point).
    """
    whole, fraction = np.divmod(magnitudes, 10**decimals)
    width = len(str(int(whole.max(initial=0))))
    sign = np.where(negative, ord("-"), _NUL).astype(np.uint8)[:, None]
    fields = [sign, _digit_columns(whole, width, leading_zeros=False)]
    if decimals:
        fields += [np.full((len(magnitudes), 1), ord("."), np.uint8), _digit_columns(fraction, decimals, True)]
    return np.concatenate(fields, axis=1)


def _lines(keyword: str, fields: np.ndarray) -> np.ndarray:
    """``(3 N, W)`` number fields, three per line → ``(N, L)`` uint8 rows ``"<keyword> a b c\\n"``
    (NUL-padded)."""
    count = len(fields) // 3
    fields = fields.reshape(count, 3, fields.shape[1])

    def column(text: str) -> np.ndarray:
        return np.broadcast_to(np.frombuffer(text.encode(), np.uint8), (count, len(text)))

    a, b, c = fields[:, 0], fields[:, 1], fields[:, 2]
    return np.concatenate([column(keyword + " "), a, column(" "), b, column(" "), c, column("\n")], axis=1)


def _vertex_text(vertices: np.ndarray) -> bytes:
    """``v x y z`` lines of ``(V, 3)`` float64 coordinates, as ``"%.6f"`` prints them."""
    exact = (
        np.isfinite(vertices).all()
        and (np.abs(vertices) < _EXACT_BELOW).all()
        and (vertices.astype(np.float32) == vertices).all()
    )
    if not exact:
        return (("v %.6f %.6f %.6f\n" * len(vertices)) % tuple(vertices.ravel())).encode()
    flat = vertices.ravel()
    micro = np.rint(np.abs(flat) * 10**DECIMALS).astype(np.int64)  # exact: see the module's docstring
    return _ascii(_lines("v", _number_fields(micro, np.signbit(flat), DECIMALS)))


def _face_text(faces: np.ndarray) -> bytes:
    """``f a b c`` lines of ``(F, 3)`` int64 vertex numbers, as ``"%d"`` prints them."""
    return _face_text_of(np.ascontiguousarray(faces, dtype=np.int64).tobytes())


@functools.lru_cache(maxsize=4)
def _face_text_of(data: bytes) -> bytes:
    """:func:`_face_text` of the int64 numbers in ``data``, memoised: every prediction of a model
    has the same faces (a body's and a clothed mesh's), so a folder of images formats them once."""
    flat = np.frombuffer(data, np.int64)
    return _ascii(_lines("f", _number_fields(np.abs(flat), flat < 0, 0)))


def _ascii(rows: np.ndarray) -> bytes:
    """The bytes of NUL-padded ``rows``, row after row, NULs dropped."""
    return rows[rows != _NUL].tobytes()


def obj_bytes(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """A mesh as Wavefront OBJ (ASCII): the comment :data:`OBJ_HEADER`, ``v x y z`` lines (the
    coordinates' frame and unit, printed with :data:`DECIMALS` decimals), then ``f a b c`` lines
    (1-based vertex numbers, the faces' winding kept).

    Args:
        vertices: ``(V, 3)`` positions, metres (any float type; float32 is formatted fastest).
        faces: ``(F, 3)`` 0-based vertex indices.
    """
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3) + 1
    return f"# {OBJ_HEADER}\n".encode() + _vertex_text(v) + _face_text(f)
