"""MuNet learns: on 8 synthetic samples (real Anny bodies, rendered), a CPU-sized network drives
the body vertex error and the clothed Chamfer distance down by at least 5× in a bounded number of
steps. Errors are measured at inference (eval mode, no teacher forcing) with the evaluation
metrics, against the ground-truth meshes (not the training loss or its point samples)."""

from __future__ import annotations

import math

import torch

from munet.body import pelvis
from munet.config import load_config
from munet.metrics import chamfer_p2s, pve
from munet.model import MuNet
from munet.train.local import train_local
from tests.samples import make_samples, stack

STEPS = 200
"""Enough for a reliable 5× (about 6× body / 5.5× clothes measured); about 0.4 s per step on 2 cores."""

OVERRIDES = [
    # The CPU preset at 64 px with two graph blocks per branch and the clothed branch on the
    # coarse graph itself (1,229 vertices): the same network, smaller, to keep the test fast.
    "model.image_size=64", "data.image_size=64", "model.body_blocks=2", "model.cloth_blocks=2",
    "graph.cloth_subdivisions=0",
    "train.lr=0.002", "train.lr_warmup=5",
    # The mutual schedules compressed to this short run: teacher forcing 0.5 → 0 over 60 steps,
    # feedback off for 20 steps, then ramped to 1 over 40.
    "mutual.teacher_forcing.ramp=60", "mutual.feedback_weight.warmup=20", "mutual.feedback_weight.ramp=40",
    # The exact point-to-surface term costs ~1 s per step on this CPU; Chamfer carries the fit.
    "loss.cloth_p2s=0",
]


def evaluate(model: MuNet, batch: dict[str, torch.Tensor], faces: torch.Tensor) -> tuple[float, float]:
    """(PVE in mm, Chamfer in cm) of the model's inference on ``batch``, pelvis-aligned."""
    model.eval()
    with torch.no_grad():
        out = model(batch["image"], batch["K"])
    model.train()
    gt_root = pelvis(batch["body_joints"])
    body_error = pve(out.body_vertices, batch["body_vertices"], pelvis(out.body_joints), gt_root)
    surface = chamfer_p2s(
        out.cloth_vertices - out.cloth_root[:, None], out.cloth_faces,
        batch["cloth_vertices"] - gt_root[:, None], faces, num_samples=2000, seed=0,
    )
    return float(body_error.mean()), float(surface["chamfer_cm"].mean())


def test_overfits_eight_samples(anny_body):
    config = load_config("cpu", OVERRIDES)
    batch = {k: torch.from_numpy(v) for k, v in stack(make_samples(anny_body, 8, 64, 2048)).items()}
    torch.manual_seed(0)
    model = MuNet(config, anny_body)
    pve_before, chamfer_before = evaluate(model, batch, anny_body.faces)

    history = train_local(config, [batch], STEPS, model=model)

    pve_after, chamfer_after = evaluate(model, batch, anny_body.faces)
    assert all(row["applied"] == 1.0 and math.isfinite(row["loss"]) for row in history)
    assert history[-1]["mutual/teacher_forcing"] == 0.0 and history[-1]["mutual/feedback_weight"] == 1.0
    assert pve_after <= pve_before / 5, (pve_before, pve_after)
    assert chamfer_after <= chamfer_before / 5, (chamfer_before, chamfer_after)
