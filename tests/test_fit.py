"""Test-time fitting to a person mask (munet.fit): costs, limb turns, and fits of the real Anny body
through a real MuNet's graph operators."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from munet.body import pelvis
from munet.config import load_config
from munet.fit import FitSettings, FittedMeshes, SilhouetteFitter, coverage_cost, fit_output, mask_targets, outside_cost
from munet.fit.articulation import LIMBS, PIVOTS, articulate
from munet.metrics import fraction_on_mask
from munet.model import MuNet, weak_to_translation
from munet.model.templates import PART_NAMES
from munet.train.step import batch_to_tensors
from tests.samples import SMALL_NETWORK, make_samples, stack

SIZE = 128


@pytest.fixture(scope="module")
def model_and_batch(anny_body):
    config = load_config(
        "cpu",
        SMALL_NETWORK,
    )
    torch.manual_seed(0)
    model = MuNet(config, anny_body).eval()
    batch = batch_to_tensors(
        stack(make_samples(anny_body, count=2, image_size=SIZE, cloth_points=256)), torch.device("cpu")
    )
    return model, batch


def test_costs_vanish_on_target_and_grow_away_from_it():
    mask = np.zeros((40, 40), bool)
    mask[10:30, 10:20] = True
    targets = mask_targets([mask], outline_count=60)
    assert targets.outline.shape == (1, 60, 2)
    assert mask[targets.outline[0, :, 1].long(), targets.outline[0, :, 0].long()].all()  # on the mask's edge
    inside = torch.tensor([[[12.0, 12.0], [15.0, 25.0], [19.0, 29.0]]])
    assert outside_cost(inside, targets).item() == 0.0
    right = torch.tensor([[[29.0, 20.0]]])  # 10 px right of the last mask column
    assert outside_cost(right, targets).item() == pytest.approx((10 / 40) ** 2, rel=0.02)
    # Every outline point has a projected vertex on it: no coverage cost; one lone vertex: some.
    assert coverage_cost(targets.outline, targets, tolerance=0.5).item() == 0.0
    assert coverage_cost(inside[:, :1], targets, tolerance=0.5).item() > (5 / 40) ** 2
    with pytest.raises(ValueError, match="empty"):
        mask_targets([np.zeros((8, 8), bool)], 10)


def _ground_truth(model: MuNet, batch) -> FittedMeshes:
    body = batch["body_vertices"]
    coarse = model.down(body)
    return FittedMeshes(body, coarse, model.cloth_up(coarse), pelvis(model.regress_joints(body)))


def test_fit_brings_a_shifted_body_back_onto_its_mask(model_and_batch):
    model, batch = model_and_batch
    truth = _ground_truth(model, batch)
    masks = [m[0].numpy() > 0.5 for m in batch["mask"]]
    shift = torch.tensor([0.12, -0.06, 0.0])
    moved = FittedMeshes(truth.body + shift, truth.coarse + shift, truth.cloth + shift, truth.root + shift)
    fitter = SilhouetteFitter.for_model(model, FitSettings())
    fitted, reports = fitter(moved, batch["K"], masks)
    for i, report in enumerate(reports):
        assert report.on_mask_before < 0.75 and report.on_mask_after > 0.95, report
        assert report.on_mask_after == pytest.approx(
            fraction_on_mask(fitted.body[i].numpy(), batch["K"][i].numpy(), masks[i])
        )
        assert report.outline_gap_after < 0.5 * report.outline_gap_before
    # The shift is undone (the silhouette fixes x and y; depth is weakly observed), and the body's
    # shape is kept: vertex error after the fit is a fraction of the shift.
    root_error = (fitted.root - truth.root).norm(dim=1)
    assert (root_error < 0.05).all(), root_error
    vertex_error = (fitted.body - truth.body).norm(dim=2).mean(dim=1)
    assert (vertex_error < 0.3 * shift.norm()).all(), vertex_error
    assert torch.allclose(fitted.root, pelvis(model.regress_joints(fitted.body)), atol=1e-6)


def test_fit_output_fits_only_samples_with_a_mask(model_and_batch):
    model, batch = model_and_batch
    with torch.no_grad():
        output = model(batch["image"][:, :, ::2, ::2], batch["K"] * torch.tensor([[0.5], [0.5], [1.0]]))
    K_input = batch["K"] * torch.tensor([[0.5], [0.5], [1.0]])
    masks = [batch["mask"][0, 0].numpy() > 0.5, None]
    unfitted, none = fit_output(
        SilhouetteFitter.for_model(model), output, K_input, 64, batch["K"], [np.zeros((SIZE, SIZE), bool), None]
    )
    assert none == [None, None] and unfitted is output  # an empty mask is no mask
    broken = dataclasses.replace(output, body_vertices=output.body_vertices.clone())
    broken.body_vertices[0, 0, 0] = float("nan")
    same, none = fit_output(SilhouetteFitter.for_model(model), broken, K_input, 64, batch["K"], [masks[0], None])
    assert none == [None, None] and same is broken  # a non-finite prediction is not fitted ...
    with pytest.raises(ValueError, match="NaN or infinite"):  # ... and the fitter refuses it
        SilhouetteFitter.for_model(model)(
            FittedMeshes(broken.body_vertices, broken.body_coarse, broken.cloth_vertices, broken.translation),
            batch["K"],
            masks[:1] * 2,
        )
    fitter = SilhouetteFitter.for_model(model, FitSettings(steps=30))
    fitted, reports = fit_output(fitter, output, K_input, 64, batch["K"], masks)
    assert reports[1] is None and reports[0].on_mask_after > reports[0].on_mask_before
    for name in ("body_vertices", "body_joints", "cloth_vertices", "translation", "weak_camera"):
        before, after = getattr(output, name), getattr(fitted, name)
        assert torch.equal(before[1], after[1]), name
        assert not torch.equal(before[0], after[0]), name
    # The fitted sample is self-consistent: joints from its body, pelvis = translation = weak camera.
    assert torch.allclose(fitted.body_joints, model.regress_joints(fitted.body_vertices), atol=1e-6)
    assert torch.allclose(fitted.translation, pelvis(fitted.body_joints), atol=1e-5)
    assert torch.allclose(weak_to_translation(fitted.weak_camera, K_input, 64), fitted.translation, atol=1e-5)


def test_limbs_turn_about_their_joints_and_the_trunk_stays(model_and_batch):
    model, batch = model_and_batch
    fitter = SilhouetteFitter.for_model(model, FitSettings())
    membership = fitter.memberships["coarse"]
    parts = model.templates.coarse_parts
    trunk = (parts == PART_NAMES.index("torso")) | (parts == PART_NAMES.index("head"))
    hand = parts == PART_NAMES.index("left_hand")
    elbow, shoulder = ([joint for _, joint in LIMBS].index(name) for name in ("left_elbow", "left_shoulder"))
    # Trunk vertices far from the limbs belong to no limb; hand vertices to both left-arm angles.
    assert (membership[trunk].amax(dim=1) < 1.0).all() and (membership[trunk].amax(dim=1) == 0).float().mean() > 0.6
    assert torch.allclose(membership[hand][:, [elbow, shoulder]], torch.ones(int(hand.sum()), 2))
    body = model.down(batch["body_vertices"][:1])
    joints = model.regress_joints(batch["body_vertices"][:1])
    pivots = joints[:, list(PIVOTS)]
    angles = torch.zeros(1, len(LIMBS))
    angles[0, shoulder] = 0.5
    turned = articulate(body, membership, pivots, angles)
    still = membership[:, shoulder] == 0
    torch.testing.assert_close(turned[0, still], body[0, still], atol=1e-6, rtol=0)
    assert torch.equal(turned[..., 2], body[..., 2])
    # A vertex fully in the arm keeps its distance to the shoulder and turns by exactly 0.5 rad.
    pivot = pivots[0, shoulder, :2]
    before, after = body[0, hand, :2] - pivot, turned[0, hand, :2] - pivot
    torch.testing.assert_close(after.norm(dim=1), before.norm(dim=1))
    turn = torch.atan2(after[:, 1], after[:, 0]) - torch.atan2(before[:, 1], before[:, 0])
    torch.testing.assert_close(torch.remainder(turn, 2 * torch.pi), torch.full_like(turn, 0.5), atol=1e-4, rtol=0)


def test_fit_settings_are_checked():
    assert FitSettings(steps=10).first_step(FitSettings().deform_from) == 5
    with pytest.raises(ValueError, match="articulate_from"):
        FitSettings(articulate_from=1.5)
    with pytest.raises(ValueError, match="steps"):
        FitSettings(steps=0)
