"""Each loss term against a small hand-computed case, and their weighted assembly."""

from __future__ import annotations

import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation

from munet.body import pelvis
from munet.config import LossConfig, Schedule
from munet.geometry import vertex_normals
from munet.graph import MeshGraph
from munet.losses import TERMS, compute_losses, find_nonfinite, loss_weights
from munet.losses.body import (
    canonical_vertex_loss,
    heatmap_loss,
    joint_loss,
    orientation_loss,
    orientation_target,
    param_loss,
    reprojection_loss,
    turned_only,
    vertex_loss,
)
from munet.losses.cloth import chamfer_and_normal_loss, edge_loss, laplacian_loss, point_to_surface_loss
from munet.losses.consistency import inside_loss, tight_loss
from munet.losses.nearest import nearest_indices
from munet.model import MuNetOutput


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_vertex_loss_is_root_aligned_l1():
    gt = t([[[0, 0, 0], [0, 0, 0]]])
    pred = t([[[5, 5, 5], [6, 5, 5]]])
    root = t([[5, 5, 5]])
    assert float(vertex_loss(pred, gt, root, torch.zeros(1, 3))) == pytest.approx(1 / 6)
    assert float(vertex_loss(pred, pred + 2.0, root, root + 2.0)) == pytest.approx(0.0)


def test_joint_loss_aligns_the_hip_midpoints():
    gt = torch.zeros(1, 17, 3)
    gt[0, 11, 0], gt[0, 12, 0] = 0.1, -0.1  # hips at ±10 cm, pelvis at the origin
    assert float(joint_loss(gt + t([1.0, 2.0, 3.0]), gt)) == pytest.approx(0.0, abs=1e-7)
    pred = gt.clone()
    pred[0, 0, 2] = 0.51  # the nose 51 cm off along z: one coordinate of 17 × 3
    assert float(joint_loss(pred, gt)) == pytest.approx(0.51 / 51)


def test_reprojection_loss_in_normalised_coordinates():
    size = 4
    K = t([[[10, 0, 1.5], [0, 10, 1.5], [0, 0, 1]]])
    joints = t([[[0, 0, 2]]])  # projects to the centre (1.5, 1.5) → normalised (0, 0)
    target = t([[[2.5, 1.5]]])  # one pixel right → normalised x = 0.5
    assert float(reprojection_loss(joints, K, target, size)) == pytest.approx(0.25)


def test_orientation_target_recovers_a_known_turn_and_the_loss_measures_it():
    skeleton = torch.randn(17, 3, generator=torch.Generator().manual_seed(1))
    turn = torch.from_numpy(Rotation.from_euler("yx", [130, -20], degrees=True).as_matrix()).float()
    gt = (1.3 * skeleton @ turn.T + t([0.2, -0.1, 4.0]))[None]  # scaled and moved: only the turn counts
    assert torch.allclose(orientation_target(skeleton, gt)[0], turn, atol=1e-5)
    assert float(orientation_loss(turn[None], orientation_target(skeleton, gt))) == pytest.approx(0.0, abs=1e-5)
    expected = float((torch.eye(3) - turn).abs().mean())
    assert float(orientation_loss(torch.eye(3)[None], orientation_target(skeleton, gt))) == pytest.approx(
        expected, rel=1e-4
    )


def test_canonical_vertex_loss_ignores_the_orientation_and_measures_the_shape():
    generator = torch.Generator().manual_seed(2)
    body = torch.randn(1, 30, 3, generator=generator)
    turn = torch.from_numpy(Rotation.from_euler("y", 150, degrees=True).as_matrix()).float()[None]
    other = torch.from_numpy(Rotation.from_euler("xz", [40, -70], degrees=True).as_matrix()).float()[None]
    root = t([[0.1, 0.2, 3.0]])
    # The same body under two orientations, each given with its own rotation: no error at all.
    gt, pred = body @ turn.transpose(1, 2) + root[:, None], body @ other.transpose(1, 2) + 2 * root[:, None]
    assert float(canonical_vertex_loss(pred, 2 * root, other, gt, root, turn)) == pytest.approx(0.0, abs=1e-6)
    # A shape error is measured in the body frame, whatever the orientations.
    moved = (body + t([0.0, 0.05, 0.0])) @ other.transpose(1, 2) + 2 * root[:, None]
    assert float(canonical_vertex_loss(moved, 2 * root, other, gt, root, turn)) == pytest.approx(0.05 / 3, rel=1e-4)


def test_turned_only_keeps_the_values_and_sends_gradient_to_the_orientation_alone():
    generator = torch.Generator().manual_seed(3)
    shape = torch.randn(2, 20, 3, generator=generator, requires_grad=True)
    turn = torch.from_numpy(Rotation.from_euler("yx", [[100, 10], [-60, 30]], degrees=True).as_matrix()).float()
    turn.requires_grad_(True)
    root = t([[0.1, 0.2, 3.0], [0.0, -0.3, 5.0]])
    points = shape @ turn.transpose(1, 2) + root[:, None]
    turned = turned_only(points, root, turn)
    assert torch.allclose(turned, points - root[:, None], atol=1e-6)
    vertex_loss(turned, torch.zeros_like(points), torch.zeros_like(root), torch.zeros_like(root)).backward()
    assert shape.grad is None or float(shape.grad.abs().max()) == 0.0  # the shape is not bent
    assert float(turn.grad.abs().max()) > 0.0  # the orientation learns


def test_param_loss_is_mse_of_pose_plus_shape():
    loss = param_loss(t([[1.0, 0.0]]), t([[0.5]]), t([[0.0, 0.0]]), t([[0.0]]))
    assert float(loss) == pytest.approx(0.5 + 0.25)


def test_chamfer_and_normal_by_hand():
    pred = t([[[0, 0, 0], [1, 0, 0]]])
    pred_normals = t([[[0, 0, 1], [1, 0, 0]]])
    gt = t([[[0, 0, 0]]])
    gt_normals = t([[[0, 0, 1]]])
    chamfer, normal = chamfer_and_normal_loss(pred, pred_normals, gt, gt_normals)
    # pred → gt: distances 0 and 1 (mean 0.5); gt → pred: 0. Chamfer = (0.5 + 0) / 2.
    assert float(chamfer) == pytest.approx(0.25, abs=1e-6)
    # pred → gt cosines 1 and 0 (mean 0.5); gt → pred cosine 1. 1 - (0.5 + 1) / 2.
    assert float(normal) == pytest.approx(0.25)


def test_chamfer_gradient_is_finite_at_zero_distance():
    pred = t([[[0, 0, 0], [1, 0, 0]]]).requires_grad_(True)
    normals = t([[[0, 0, 1], [0, 0, 1]]])
    chamfer, _ = chamfer_and_normal_loss(pred, normals, pred.detach().clone(), normals)
    chamfer.backward()
    assert torch.isfinite(pred.grad).all()


def test_point_to_surface_hits_the_face_interior_and_the_corner():
    vertices = t([[[0, 0, 0], [1, 0, 0], [0, 1, 0]]])
    faces = torch.tensor([[0, 1, 2]])
    points = t([[[0.2, 0.2, 0.3], [-0.3, -0.4, 0.0]]])  # above the face; beyond corner 0
    assert float(point_to_surface_loss(points, vertices, faces)) == pytest.approx((0.3 + 0.5) / 2, rel=1e-4)


def test_edge_loss_measures_relative_stretch():
    reference = t([[[0, 0, 0], [1, 0, 0], [0, 1, 0]]])
    edges = torch.tensor([[0, 1], [0, 2], [1, 2]])
    assert float(edge_loss(reference, reference, edges)) == pytest.approx(0.0, abs=1e-10)
    assert float(edge_loss(1.5 * reference, reference, edges)) == pytest.approx(0.25)


def test_laplacian_of_a_path():
    edges = torch.tensor([[0, 1], [1, 2]])
    linear = t([[[0.0], [1.0], [2.0]]])  # L = (0 - 1, 1 - 1, 2 - 1) = (-1, 0, 1)
    assert float(laplacian_loss(linear, edges)) == pytest.approx(2 / 3)
    assert float(laplacian_loss(torch.full((2, 3, 3), 7.0), edges)) == pytest.approx(0.0, abs=1e-5)


def test_inside_penalises_only_points_in_front_of_the_surface():
    cloth = t([[[0, 0, 0], [5, 5, 5]]])
    normals = t([[[0, 0, 1], [1, 0, 0]]])
    body = t([[[0, 0, 0.1], [0, 0, -0.2]]])  # 10 cm outside, 20 cm inside
    assert float(inside_loss(body, cloth, normals)) == pytest.approx(0.05)


def test_tight_is_the_mean_squared_offset():
    assert float(tight_loss(t([[[3, 4, 0], [0, 0, 0]]]))) == pytest.approx(12.5)


def test_nearest_indices_match_brute_force():
    generator = torch.Generator().manual_seed(0)
    query, points = torch.rand(3, 50, 3, generator=generator), torch.rand(3, 40, 3, generator=generator)
    expected = torch.cdist(query, points).argmin(dim=2)
    assert torch.equal(nearest_indices(query, points), expected)


SKELETON = torch.randn(17, 3, generator=torch.Generator().manual_seed(0))
SKELETON = SKELETON - pelvis(SKELETON[None])[0]
"""A pelvis-centred template skeleton for the orientation term; the hand-made bodies below are
not rotated."""


def _sphere_output(batch: int = 2) -> tuple[MuNetOutput, dict[str, torch.Tensor], MeshGraph]:
    """A hand-made prediction: a 1.1 m sphere as clothes over a 1 m sphere 'body' (V = 42)."""
    sphere = trimesh.creation.icosphere(subdivisions=1)
    graph = MeshGraph.from_arrays(sphere.vertices, sphere.faces)
    body = graph.vertices.expand(batch, -1, -1).clone()
    joints = SKELETON.expand(batch, -1, -1).clone()
    translation = t([0.0, 0.0, 3.0]).expand(batch, 3)
    output = MuNetOutput(
        body_vertices=body + translation[:, None],
        body_joints=joints + translation[:, None],
        body_coarse=body + translation[:, None],
        body_rotation=torch.eye(3).expand(batch, 3, 3),
        weak_camera=t([1.0, 0.0, 0.0]).expand(batch, 3),
        translation=translation,
        body_faces=graph.faces,
        cloth_vertices=1.1 * body + translation[:, None],
        cloth_faces=graph.faces,
        cloth_root=translation,
        cloth_base=body,
        cloth_offsets=0.1 * body,
        feedback_body=body,
        teacher_forced=torch.zeros(batch, dtype=torch.bool),
    )
    K = t([[100, 0, 31.5], [0, 100, 31.5], [0, 0, 1]]).expand(batch, 3, 3)
    target = {
        "image": torch.zeros(batch, 3, 64, 64),
        "K": K,
        "body_vertices": output.body_vertices + 0.01,
        "body_joints": output.body_joints,
        "joints_2d": torch.full((batch, 17, 2), 31.5),
        "cloth_points": 1.2 * body + translation[:, None],
        "cloth_normals": vertex_normals(body, graph.faces),
    }
    return output, target, graph


def test_total_is_the_weighted_sum_and_zero_weights_are_skipped():
    output, batch, graph = _sphere_output()
    config = LossConfig(
        body_vertex=Schedule(1.0),
        cloth_p2s=Schedule(0.0),
        consistency_tight=Schedule(start=0.0, end=2.0, kind="step", warmup=10),
    )
    terms = compute_losses(output, batch, config, 3, graph, SKELETON)
    assert "cloth_p2s" not in terms and "consistency_tight" not in terms and "body_params" not in terms
    weights = loss_weights(config, 3)
    expected = sum(weights[name] * value for name, value in terms.items() if name != "total")
    assert float(terms["total"]) == pytest.approx(float(expected))
    # Hand-checkable values of this configuration:
    assert float(terms["body_vertex"]) == pytest.approx(0.01, rel=1e-4)  # every coordinate 1 cm off
    assert float(terms["cloth_chamfer"]) == pytest.approx(0.1, rel=1e-3)  # spheres of radius 1.1 and 1.2
    assert float(terms["cloth_edge"]) == pytest.approx(0.01, rel=1e-4)  # every edge 10% longer
    assert float(terms["consistency_inside"]) == 0.0
    assert float(terms["body_orientation"]) == pytest.approx(0.0, abs=1e-5)  # same turn as the template
    assert float(terms["body_canonical"]) == pytest.approx(0.01, rel=1e-3)  # unturned: the vertex error
    assert set(terms) <= set(TERMS) | {"total"}
    later = compute_losses(output, batch, config, 10, graph, SKELETON)
    assert float(later["consistency_tight"]) == pytest.approx(0.01, rel=1e-4)  # offsets 10 cm


def test_nonfinite_terms_are_named_and_missing_keys_are_errors():
    output, batch, graph = _sphere_output()
    batch["body_vertices"] = batch["body_vertices"].clone()
    batch["body_vertices"][0, 0, 0] = float("nan")
    terms = compute_losses(output, batch, LossConfig(body_vertex=Schedule(1.0)), 0, graph, SKELETON)
    assert find_nonfinite(terms) == ["body_vertex", "body_canonical", "total"]
    del batch["cloth_points"]
    with pytest.raises(KeyError, match="cloth_points"):
        compute_losses(output, batch, LossConfig(), 0, graph, SKELETON)


def test_surface_terms_report_nan_instead_of_raising():
    vertices = t([[[0, 0, 0], [1, 0, 0], [0, 1, 0]]])
    faces = torch.tensor([[0, 1, 2]])
    bad = t([[[float("nan"), 0, 0]]])
    assert torch.isnan(point_to_surface_loss(bad, vertices, faces))
    chamfer, _ = chamfer_and_normal_loss(vertices, vertices, bad, bad)
    assert torch.isnan(chamfer)


def test_heatmap_loss_is_zero_at_the_target_and_ignores_joints_outside_the_crop():
    size, cells = 64, 8
    joints = torch.tensor([[[20.0, 30.0], [200.0, 5.0]]])  # the second lies outside the crop
    centres = (torch.arange(cells) + 0.5) * size / cells - 0.5
    distance = ((centres[None, :] - 20.0) ** 2 + (centres[:, None] - 30.0) ** 2) / (size / cells) ** 2
    matching = (-0.5 * distance).expand(1, 2, cells, cells)  # the target's own log-density, both joints
    assert float(heatmap_loss(matching, joints, size)) == pytest.approx(0.0, abs=1e-6)
    uniform = torch.zeros(1, 2, cells, cells)
    elsewhere = matching.flip(-1)  # peaked on the mirrored cell
    assert 0.5 < float(heatmap_loss(uniform, joints, size)) < float(heatmap_loss(elsewhere, joints, size))
    # Only the joint inside counts: changing the outside joint's logits changes nothing.
    changed = matching.clone()
    changed[:, 1] = torch.randn(cells, cells)
    assert float(heatmap_loss(changed, joints, size)) == pytest.approx(0.0, abs=1e-6)
