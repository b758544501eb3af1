"""Numeric precision of the training forward pass (``train.precision``).

``fp32``: everything in float32. ``bf16`` / ``fp16``: the network's forward pass runs under
``torch.autocast`` with that dtype (matrix products and convolutions in 16 bits, reductions and
the graph's sparse products in float32); the weights, the optimiser state and the losses stay
float32, so checkpoints do not depend on the precision. ``fp16`` also scales the loss
(``torch.amp.GradScaler``, see :class:`munet.train.optim.OptimizerStep`) and needs a GPU.
``auto``: ``bf16`` on a GPU, ``fp32`` on the CPU (where 16-bit autocast is slower than float32 on
most processors).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""Valid values of ``train.precision``."""

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """``train.precision`` for ``device``: ``auto`` becomes ``bf16`` on CUDA and ``fp32``
    elsewhere; the others stay as they are.

    Raises:
        ValueError: an unknown value, or ``fp16`` on a device other than CUDA.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            f"train.precision fp16 needs a GPU (loss scaling is for CUDA), but training runs on {device.type}; "
            "use bf16 or fp32 there"
        )
    return precision


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """The forward pass's precision context: ``torch.autocast`` for ``bf16``/``fp16`` (after
    :func:`resolve_precision`), nothing for ``fp32``."""
    resolved = resolve_precision(precision, device)
    if resolved == "fp32":
        yield
        return
    with torch.autocast(device.type, dtype=_DTYPES[resolved]):
        yield


def as_float32(output: object) -> object:
    """A copy of a dataclass of tensors (e.g. :class:`munet.model.MuNetOutput`) whose floating-point
    tensors are float32, for losses and metrics computed outside autocast."""
    changes = {
        field.name: value.float()
        for field in dataclasses.fields(output)  # type: ignore[arg-type]
        if isinstance(value := getattr(output, field.name), torch.Tensor) and value.is_floating_point()
    }
    return dataclasses.replace(output, **changes)  # type: ignore[type-var]
