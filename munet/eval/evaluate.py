"""Metrics of a trained model on held-out shards.

Body metrics are MPJPE and PVE after aligning the pelvis (COCO-17 hips midpoint) and PA-MPJPE
after a similarity Procrustes, in mm, and the global orientation error in degrees (the angle
between the predicted and true torso frames, :func:`munet.metrics.orientation_error`; its median
is the meaningful summary, as a few front/back confusions dominate the mean). Clothed-surface
metrics follow the ICON protocol (Chamfer = mean of both point-to-surface directions, P2S =
ground-truth samples to the predicted surface, in cm; normal consistency) on
``num_surface_samples`` points per surface, after the same pelvis alignment as PVE: the
predicted clothed mesh is moved by ``gt_pelvis − predicted_pelvis`` so that the depth ambiguity
of a single image does not swamp the shape error. Predictions never see ground truth (no teacher
forcing, no alignment inside the model). With ``fit``, the predictions are fitted to each
sample's person mask first (test-time fitting, :mod:`munet.fit`): the mask is an input then, as
it is for ``munet predict`` on a cut-out.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from munet.body import pelvis
from munet.checkpoint.load import load_trained_model
from munet.data.decode import Decoder, iter_samples
from munet.data.schema import SampleRecord, decode_record
from munet.eval.report import write_report
from munet.fit import FitSettings, SilhouetteFitter, fit_output
from munet.iterutils import chunked
from munet.metrics import (
    METRIC_KEYS,
    chamfer_p2s,
    fraction_on_mask,
    mpjpe,
    orientation_error,
    pa_mpjpe,
    pve,
)
from munet.model import MuNet
from munet.train.step import batch_to_tensors

log = logging.getLogger(__name__)


EVAL_BATCH_SIZE = 8
"""Samples predicted at once. The surface samples of Chamfer/P2S are drawn per batch from the
same seed, so the clothed metrics of a sample depend (slightly) on the batch it is in."""


@dataclass
class EvalItem:
    """One held-out sample: the model input and the full ground-truth record."""

    inputs: dict[str, np.ndarray]
    record: SampleRecord


def iter_eval_items(data: str, decoder: Decoder) -> Iterator[EvalItem]:
    """Samples of a shard folder/URI in key order, decoded for the model and as full records, read
    by :func:`munet.data.decode.iter_samples` (shards checked against the manifest; bad shards and
    samples follow ``decoder.on_error``)."""

    def item(raw: dict[str, Any]) -> EvalItem:
        return EvalItem(inputs=decoder(raw), record=decode_record(raw))

    return iter_samples(data, decoder, item)


@torch.no_grad()
def evaluate_batch(
    model: MuNet, items: list[EvalItem], num_surface_samples: int, seed: int, fitter: SilhouetteFitter | None = None
) -> tuple[list[dict[str, float]], Any]:
    """Per-sample metrics of one batch, and the model output (for pictures).

    With a ``fitter``, the predicted meshes are first fitted to each sample's full-resolution
    person mask (:mod:`munet.fit`), as ``munet predict`` does when a mask is known.
    """
    device = next(model.parameters()).device
    stacked = {key: np.stack([item.inputs[key] for item in items]) for key in items[0].inputs}
    batch = batch_to_tensors(stacked, device)
    output = model(batch["image"], batch["K"])
    if fitter is not None:
        K_masks = torch.as_tensor(
            np.stack([item.record.camera.K for item in items]), dtype=torch.float32, device=device
        )
        masks = [item.record.mask for item in items]
        output, _ = fit_output(fitter, output, batch["K"], batch["image"].shape[-1], K_masks, masks)
    gt_joints, gt_vertices = batch["body_joints"], batch["body_vertices"]
    pred_root, gt_root = pelvis(output.body_joints), pelvis(gt_joints)
    body = {
        "mpjpe_mm": mpjpe(output.body_joints, gt_joints),
        "pa_mpjpe_mm": pa_mpjpe(output.body_joints, gt_joints),
        "pve_mm": pve(output.body_vertices, gt_vertices, pred_root, gt_root),
        "orientation_deg": orientation_error(output.body_joints, gt_joints),
    }
    aligned_cloth = output.cloth_vertices + (gt_root - pred_root)[:, None]
    surface = chamfer_p2s(
        list(aligned_cloth),
        [output.cloth_faces] * len(items),
        [torch.as_tensor(item.record.cloth.vertices, dtype=torch.float32, device=device) for item in items],
        [torch.as_tensor(item.record.cloth.faces.astype(np.int64), device=device) for item in items],
        num_samples=num_surface_samples,
        seed=seed,
    )
    # 2D alignment in the full-resolution render: the decoded K is the render's K resized, and
    # both see the same camera frame.
    on_mask = [
        fraction_on_mask(vertices, item.record.camera.K, item.record.mask)
        for vertices, item in zip(output.body_vertices.cpu().numpy(), items, strict=True)
    ]
    values = {**body, **surface, "body_on_mask": on_mask}
    rows = [{"key": item.record.key, **{k: float(values[k][i]) for k in METRIC_KEYS}} for i, item in enumerate(items)]
    return rows, output


def summarise(rows: list[dict[str, float]]) -> dict[str, Any]:
    """Means of the per-sample metrics (under the keys of :data:`METRIC_KEYS`) and their
    medians (under ``"median"``)."""
    return {
        **{key: float(np.mean([r[key] for r in rows])) for key in METRIC_KEYS},
        "median": {key: float(np.median([r[key] for r in rows])) for key in METRIC_KEYS},
    }


def evaluate(
    checkpoint: str | Path,
    data: str,
    out: str | Path,
    max_samples: int | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    num_surface_samples: int = 10_000,
    num_pictures: int = 8,
    device: str = "cpu",
    seed: int = 0,
    fit: FitSettings | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint on held-out shards and write the report to ``out``.

    Writes ``metrics.json`` (means, medians and counts under the keys of :data:`METRIC_KEYS`),
    ``per_sample.csv``, ``metrics.md``, ``overlays.png`` and ``histograms.png``.

    Returns:
        The summary written to ``metrics.json``.
    """
    model, config, step = load_trained_model(checkpoint, device)
    fitter = None if fit is None else SilhouetteFitter.for_model(model, fit)
    decoder = Decoder.from_config(config.data, augment=False)
    rows: list[dict[str, float]] = []
    shown: list[tuple[EvalItem, dict[str, np.ndarray]]] = []
    total = max_samples
    with tqdm(total=total, desc="evaluate", unit="sample", disable=None) as bar:
        for batch in chunked(islice(iter_eval_items(data, decoder), max_samples), batch_size):
            batch_rows, output = evaluate_batch(model, batch, num_surface_samples, seed, fitter)
            rows.extend(batch_rows)
            for i, item in enumerate(batch):
                if len(shown) < num_pictures:
                    shown.append(
                        (
                            item,
                            {
                                "body_vertices": output.body_vertices[i].cpu().numpy(),
                                "cloth_vertices": output.cloth_vertices[i].cpu().numpy(),
                                "body_faces": output.body_faces.cpu().numpy(),
                                "cloth_faces": output.cloth_faces.cpu().numpy(),
                            },
                        )
                    )
            bar.update(len(batch))
    if not rows:
        raise ValueError(f"{data} holds no samples to evaluate")
    summary = {
        "checkpoint": str(checkpoint),
        "step": step,
        "data": str(data),
        "num_samples": len(rows),
        "num_surface_samples": num_surface_samples,
        "fit": None if fit is None else dataclasses.asdict(fit),
        "joint_set": "COCO-17, pelvis = mean of the hips",
        **summarise(rows),
    }
    write_report(Path(out), summary, rows, shown)
    log.info(
        "evaluated %d samples: %s (means); median orientation_deg %.1f",
        len(rows),
        ", ".join(f"{k} {summary[k]:.2f}" for k in METRIC_KEYS),
        summary["median"]["orientation_deg"],
    )
    return summary
