"""Input validation shared by the metrics: every error names the argument and the expected shape."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch

_CHECK_FINITE = contextvars.ContextVar("munet_metrics_check_finite", default=True)


@contextlib.contextmanager
def without_finite_checks() -> Iterator[None]:
    """Within this context the metrics skip their NaN/inf check of the inputs (shapes are still
    checked): a non-finite input then gives a NaN result instead of an error. The check reads a
    value back from the device, which a training step that only logs its errors avoids."""
    token = _CHECK_FINITE.set(False)
    try:
        yield
    finally:
        _CHECK_FINITE.reset(token)


def check_points(name: str, value: object, layout: str = "(B, N, 3)") -> torch.Tensor:
    """Return ``value`` if it is a finite floating tensor of shape ``layout``, else raise.

    ``layout`` is a string such as ``"(B, J, 3)"``; only its rank and a trailing ``3`` are enforced.

    Raises:
        TypeError: ``value`` is not a floating-point ``torch.Tensor``.
        ValueError: wrong rank, last dimension not 3, or NaN/inf entries.
    """
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point torch.Tensor of shape {layout}, "
            f"got {type(value).__name__}" + (f" of dtype {value.dtype}" if isinstance(value, torch.Tensor) else "")
        )
    rank = layout.count(",") + 1
    if value.ndim != rank or value.shape[-1] != 3:
        raise ValueError(f"{name} must have shape {layout} (xyz in metres), got {tuple(value.shape)}")
    check_finite(name, value)
    return value


def check_finite(name: str, value: torch.Tensor) -> None:
    """Raise ``ValueError`` if ``value`` holds NaN or inf, saying how many entries are bad (no check
    inside :func:`without_finite_checks`)."""
    if not _CHECK_FINITE.get():
        return
    bad = ~torch.isfinite(value)
    if bad.any():
        raise ValueError(
            f"{name} contains {int(bad.sum())} NaN/inf value(s) (shape {tuple(value.shape)}); "
            "metrics need finite coordinates"
        )


def check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` (already validated) have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
