"""One training step: a batch (the decoded-sample contract) → losses. The one place this happens.

Free of DDP and Ray specifics so that the local trainer and the Ray Train workers share it: the
model may be wrapped (DDP), and is then called through its wrapper (so gradients are synchronised)
while the graph and configuration are read from the inner module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from munet.body import pelvis
from munet.config import MuNetConfig
from munet.data.contract import UINT8_MEMBERS
from munet.losses import compute_losses, supervision_weights
from munet.metrics import mpjpe, pve, without_finite_checks
from munet.model import MuNet, MutualState
from munet.train.augment import augment_batch
from munet.train.precision import as_float32, autocast


def unwrap_model(model: torch.nn.Module) -> MuNet:
    """The :class:`MuNet` inside ``model`` (a ``DistributedDataParallel``/``DataParallel`` wrapper
    or the model itself)."""
    inner = getattr(model, "module", model)
    if not isinstance(inner, MuNet):
        raise TypeError(f"expected a MuNet (possibly DDP-wrapped), got {type(inner).__name__}")
    return inner


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The CPU random generator of one training step on one rank (augmentation and
    teacher-forcing draws): reproducible, and different across steps and ranks."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 97 + rank)


def batch_to_tensors(batch: Mapping[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    """Numeric entries of a batch as tensors on ``device``: floating point as float32, the 8-bit
    image and mask of the decoded-sample contract (:data:`munet.data.contract.UINT8_MEMBERS`) moved
    as bytes, then made float32 (image in [0, 1], mask in {0, 1}) on the device; other entries
    (keys, URLs) are dropped."""
    tensors = {}
    for key, value in batch.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            value = torch.from_numpy(value)
        if not isinstance(value, torch.Tensor):
            continue
        value = value.to(device, non_blocking=True)
        if key in UINT8_MEMBERS and value.dtype == torch.uint8:
            value = value.to(torch.float32) / UINT8_MEMBERS[key]
        elif value.is_floating_point():
            value = value.to(torch.float32)
        tensors[key] = value
    return tensors


def training_step(
    model: torch.nn.Module,
    batch: Mapping[str, Any],
    step: int,
    config: MuNetConfig,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
    """Forward one batch and compute its losses (no backward, no optimiser step).

    With ``data.augment`` on, the batch is first zoomed, shifted and flipped at random
    (:func:`munet.train.augment.augment_batch` with ``data.augmentation``; the flip uses the
    templates' left/right maps of the body mesh and of the pose's bones). The network runs in
    ``train.precision`` (:mod:`munet.train.precision`); the losses are computed in float32.

    Nothing here waits for the device: the logged values stay tensors until a trainer reads them
    (at its logging interval), so steps that log nothing do not synchronise.

    Args:
        model: a :class:`MuNet`, possibly DDP-wrapped.
        batch: stacked samples of the decoded-sample contract (numpy arrays or tensors).
        step: the training step (schedules of the loss weights and of the mutual mechanism).
        config: the run configuration (its ``loss`` section weights the terms, its ``data``
            section switches the augmentation, ``train.precision`` sets the forward's precision).
        generator: draws the augmentation and the teacher-forced samples (see
            :func:`step_generator`).

    Returns:
        ``(total, logs)``: the scalar loss to minimise, and scalars for logging (0-d tensors or
        floats): every computed term (``loss/<name>``, unweighted), the mutual state
        (``mutual/teacher_forcing``, ``mutual/feedback_weight``, ``mutual/forced_fraction``) and
        training-set errors of the body (``metric/mpjpe_mm``, ``metric/pve_mm``,
        pelvis-aligned; NaN when an input is not finite). A non-finite total is returned as is:
        the optimiser step skips it and names the terms responsible.
    """
    inner = unwrap_model(model)
    device = next(inner.parameters()).device
    tensors = batch_to_tensors(batch, device)
    if config.data.augment:
        templates = inner.templates
        tensors = augment_batch(
            tensors, templates.fine_mirror, templates.bone_mirror, config.data.augmentation, generator
        )
    with autocast(config.train.precision, device):
        output = model(
            tensors["image"],
            tensors["K"],
            orthographic=tensors.get("orthographic"),
            step=step,
            gt_body_vertices=tensors.get("body_vertices"),
            gt_body_valid=tensors.get("has_body_mesh"),
            gt_joints_2d=tensors.get("joints_2d"),
            generator=generator,
        )
    output = as_float32(output)
    terms = compute_losses(output, tensors, config.loss, step, inner.templates.cloth, inner.template_joints)
    state = MutualState.at_step(inner.config.mutual, step)
    logs: dict[str, torch.Tensor | float] = {f"loss/{name}": value.detach() for name, value in terms.items()}
    logs["mutual/teacher_forcing"] = state.teacher_forcing
    logs["mutual/feedback_weight"] = state.feedback_weight
    logs["mutual/forced_fraction"] = output.teacher_forced.float().mean()
    logs.update(_body_errors(output.body_vertices, output.body_joints, tensors))
    return terms["total"] + _zero_weight_anchor(output), logs


def _zero_weight_anchor(output: Any) -> torch.Tensor:
    """Every differentiable output × 0. Loss weights and schedules can leave a whole branch out of
    the loss (the ablation's body-only and clothed-only variants, terms warming up from 0); tied in
    with weight 0, its parameters still receive a (zero) gradient in every step, as DDP requires
    of every parameter of the model on every rank. Non-finite outputs do not leak into the loss."""
    anchors = [
        torch.nan_to_num(value, nan=0.0, posinf=0.0, neginf=0.0).sum()
        for value in vars(output).values()
        if isinstance(value, torch.Tensor) and value.requires_grad
    ]
    return 0.0 * torch.stack(anchors).sum() if anchors else torch.zeros(())


@torch.no_grad()
def _body_errors(
    vertices: torch.Tensor, joints: torch.Tensor, batch: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Pelvis-aligned MPJPE and PVE (mm) of the batch, as 0-d tensors, over the samples with all 17
    joints and with a body mesh respectively (NaN when none, or when an input is not finite)."""
    gt_vertices, gt_joints = batch["body_vertices"], batch["body_joints"]
    weights = supervision_weights(batch)
    with without_finite_checks():
        return {
            "metric/mpjpe_mm": _mean_over(mpjpe(joints, gt_joints), weights["all_joints"]),
            "metric/pve_mm": _mean_over(pve(vertices, gt_vertices, pelvis(joints), pelvis(gt_joints)), weights["mesh"]),
        }


def _mean_over(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of per-sample ``values`` ``(B,)`` over the samples of weight > 0 (NaN when none)."""
    if weight is None:
        return values.mean()
    kept = weight > 0
    return torch.where(kept, values, torch.zeros_like(values)).sum() / kept.sum()
