"""MuNet learns, measured as a user gets it: after a short run on 8 rendered Anny people, each seen
from a random yaw in [-180°, 180°], the ``small`` network *in eval mode* (the inference path: no
teacher forcing, no ground truth) has memorised their articulated pose, global orientation and
clothed surface, and predicts in eval mode what it predicts in train mode.

Errors are the evaluation metrics against the ground-truth skeletons and meshes (not the training
loss or its point samples). The bench ``python -m munet.bench learn`` measures the same on unseen
people."""

from __future__ import annotations

import math

import torch

from munet.body import pelvis
from munet.config import load_config
from munet.metrics import chamfer_p2s, mpjpe, orientation_error, pa_mpjpe
from munet.model import MuNet, MuNetOutput
from munet.train.local import train_local
from tests.samples import make_samples, stack

STEPS = 150
"""About 0.5 s per step on 2 cores."""

OVERRIDES = [
    # The small preset at 64 px (a quarter of the pixels, the same network).
    "model.image_size=64",
    "data.image_size=64",
    # The mutual schedules compressed to this short run: teacher forcing 0.5 → 0 over 60 steps,
    # feedback off for 60 steps, then ramped to 0.5 over 40.
    "mutual.teacher_forcing.ramp=60",
    "mutual.feedback_weight.warmup=60",
    "mutual.feedback_weight.ramp=40",
    # Memorising: the eight samples are learnt as they are, without random zoom, shift or flip.
    "data.augment=false",
]


def predict(model: MuNet, batch: dict[str, torch.Tensor], train_mode: bool = False) -> MuNetOutput:
    """The model's inference on ``batch`` (eval mode unless ``train_mode``), without gradients."""
    model.train(train_mode)
    with torch.no_grad():
        return model(batch["image"], batch["K"])


def errors(out: MuNetOutput, batch: dict[str, torch.Tensor], faces: torch.Tensor) -> dict[str, float]:
    """Mean PA-MPJPE and MPJPE (mm), median orientation error (degrees), mean Chamfer (cm)."""
    gt_joints = batch["body_joints"]
    surface = chamfer_p2s(
        out.cloth_vertices - out.cloth_root[:, None],
        out.cloth_faces,
        batch["cloth_vertices"] - pelvis(gt_joints)[:, None],
        faces,
        num_samples=2000,
        seed=0,
    )
    return {
        "pa_mpjpe": float(pa_mpjpe(out.body_joints, gt_joints).mean()),
        "mpjpe": float(mpjpe(out.body_joints, gt_joints).mean()),
        "orientation": float(orientation_error(out.body_joints, gt_joints).median()),
        "chamfer": float(surface["chamfer_cm"].mean()),
    }


def test_small_network_memorises_eight_people_seen_from_any_side(anny_body):
    config = load_config("small", OVERRIDES)
    samples = make_samples(anny_body, 8, 64, 2048, seed=0, max_yaw=180)
    batch = {k: torch.from_numpy(v) for k, v in stack(samples).items()}
    torch.manual_seed(0)
    model = MuNet(config, anny_body)
    before = errors(predict(model, batch), batch, anny_body.faces)

    history = train_local(config, [batch], STEPS, model=model)

    after = errors(predict(model, batch), batch, anny_body.faces)
    assert all(row["applied"] == 1.0 and math.isfinite(row["loss"]) for row in history)
    assert history[-1]["mutual/teacher_forcing"] == 0.0 and history[-1]["mutual/feedback_weight"] == 0.5
    # The untrained network faces the camera in the mean pose: people turned away are far off.
    assert before["mpjpe"] > 150 and before["orientation"] > 45, before
    assert after["pa_mpjpe"] <= 40 and after["mpjpe"] <= 60, (before, after)
    # The torso-frame angle (hips and shoulders) also moves with the articulation: at an MPJPE
    # under 20 mm it measured 10.9° with 2 threads and under 10° with 1. The bound is the
    # held-out target; the MPJPE above already shows every body turned the right way.
    assert after["orientation"] <= 20, (before, after)
    assert after["chamfer"] <= before["chamfer"] / 2, (before, after)
    # No layer behaves differently in training: train-mode predictions are the eval-mode ones.
    gap = (predict(model, batch, train_mode=True).body_joints - predict(model, batch).body_joints).abs().max()
    assert float(gap) * 1000 < 0.01 * after["mpjpe"], (float(gap), after)
