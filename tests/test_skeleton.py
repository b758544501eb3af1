"""The skeleton-driven initial body (munet.model.skeleton): frames, swings, part transforms and
the posed template, with the real Anny body and network templates."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch3d.transforms import axis_angle_to_matrix

from munet.body import pelvis
from munet.config import load_config
from munet.losses import compute_losses, find_nonfinite
from munet.model import MuNet
from munet.model.skeleton import Lifter, frame, part_transforms, swing
from munet.model.templates import PART_NAMES
from munet.train.step import batch_to_tensors
from tests.samples import make_samples, stack


@pytest.fixture(scope="module")
def skeleton_model(anny_body):
    config = load_config("small", ["model.keypoint_heatmaps=true", "model.skeleton_init=true"])
    return MuNet(config, anny_body)


def test_swing_is_the_shortest_rotation_between_two_directions():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 3, generator=generator), torch.randn(64, 3, generator=generator)
    b[0] = -a[0]  # opposite directions: a half turn
    b[1] = 2 * a[1]  # the same direction: no turn
    r = swing(a, b)
    unit_b = b / b.norm(dim=-1, keepdim=True)
    assert torch.allclose((r @ a[..., None])[..., 0] / a.norm(dim=-1, keepdim=True), unit_b, atol=1e-4)
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3).expand(64, 3, 3), atol=1e-4)
    assert torch.allclose(torch.linalg.det(r), torch.ones(64), atol=1e-4)
    assert torch.allclose(r[1], torch.eye(3), atol=1e-6)
    # The shortest rotation turns by the angle between the directions, about their common normal.
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    angle = torch.arccos(((r.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1))
    assert torch.allclose(angle[2:], torch.arccos(cos[2:].clamp(-1, 1)), atol=1e-3)


def test_frames_are_rotations_that_turn_with_the_skeleton():
    generator = torch.Generator().manual_seed(1)
    lateral, second = torch.randn(8, 3, generator=generator), torch.randn(8, 3, generator=generator)
    f = frame(lateral, second)
    assert torch.allclose(f.transpose(1, 2) @ f, torch.eye(3).expand(8, 3, 3), atol=1e-5)
    turn = axis_angle_to_matrix(torch.tensor([[0.3, -1.1, 0.7]])).expand(8, 3, 3)
    turned = frame((turn @ lateral[..., None])[..., 0], (turn @ second[..., None])[..., 0])
    assert torch.allclose(turned, turn @ f, atol=1e-5)


def test_a_rigidly_turned_skeleton_turns_every_part_by_the_same_rotation(skeleton_model):
    rest = skeleton_model.rest_joints
    turn = axis_angle_to_matrix(torch.tensor([[0.2, math.pi / 2, -0.4]]))
    joints = (rest @ turn[0].T)[None]
    rotations, translations = part_transforms(rest, joints, PART_NAMES)
    assert torch.allclose(rotations, turn[:, None].expand_as(rotations), atol=1e-5)
    moved = torch.einsum("bpij,j->bpi", rotations, rest[0]) + translations
    assert torch.allclose(moved, joints[:, 0:1].expand_as(moved), atol=1e-5)


def test_the_template_posed_by_a_person_s_joints_takes_their_articulation(skeleton_model, anny_body):
    """Pose the coarse template with the true joints of posed Anny people: the joints of the posed
    mesh must follow the person's far better than the rest template's do."""
    samples = stack(make_samples(anny_body, count=6, image_size=64, cloth_points=64, seed=3))
    batch = batch_to_tensors(samples, torch.device("cpu"))
    truth = batch["body_joints"] - pelvis(batch["body_joints"])[:, None]
    with torch.no_grad():
        start = skeleton_model.skeleton_posed(truth)
        posed = start.canonical @ start.rotation.transpose(1, 2)
        joints = skeleton_model.regress_joints(skeleton_model.up(posed))
    joints = joints - pelvis(joints)[:, None]
    rest = skeleton_model.template_joints
    posed_error = (joints - truth).norm(dim=-1).mean()
    rest_error = (rest - truth).norm(dim=-1).mean()
    assert posed_error < 0.45 * rest_error, (posed_error, rest_error)
    assert posed_error < 0.06


def test_the_untrained_lifter_returns_the_rest_skeleton_and_learns_from_its_loss(skeleton_model):
    lifter = Lifter(skeleton_model.template_joints)
    joints_2d = torch.rand(4, 17, 2) * 2 - 1
    assert torch.allclose(lifter(joints_2d), skeleton_model.template_joints.expand(4, 17, 3), atol=1e-6)
    target = skeleton_model.template_joints + 0.05
    loss = (lifter(joints_2d) - target).abs().mean()
    loss.backward()
    assert lifter.out.weight.grad.abs().sum() > 0


def test_skeleton_init_needs_the_keypoint_head(anny_body):
    config = load_config("small", ["model.skeleton_init=true"])
    with pytest.raises(ValueError, match="keypoint_heatmaps"):
        MuNet(config, anny_body)


def test_a_training_forward_gives_finite_losses_and_trains_the_lifter_on_true_2d_joints(skeleton_model, anny_body):
    samples = stack(make_samples(anny_body, count=2, image_size=128, cloth_points=256, seed=5))
    batch = batch_to_tensors(samples, torch.device("cpu"))
    skeleton_model.train()
    output = skeleton_model(
        batch["image"],
        batch["K"],
        step=10_000,
        gt_body_vertices=batch["body_vertices"],
        gt_joints_2d=batch["joints_2d"],
        generator=torch.Generator().manual_seed(0),
    )
    assert output.lifted_from_truth is not None
    terms = compute_losses(
        output,
        batch,
        skeleton_model.config.loss,
        10_000,
        skeleton_model.templates.cloth,
        skeleton_model.template_joints,
    )
    assert "body_lifted" in terms and not find_nonfinite(terms)
    skeleton_model.zero_grad()
    terms["total"].backward()
    assert skeleton_model.lifter.out.weight.grad.abs().sum() > 0
    skeleton_model.eval()
    with torch.no_grad():
        assert skeleton_model(batch["image"], batch["K"], gt_joints_2d=batch["joints_2d"]).lifted_from_truth is None
