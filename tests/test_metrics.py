"""Metrics against independent computations: scipy (Procrustes, Kabsch, rotation angles), trimesh
(closest point), closed forms (spheres, hand-made offsets)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import procrustes
from scipy.spatial.transform import Rotation

from munet.metrics import (
    COCO_PELVIS,
    chamfer_p2s,
    mpjpe,
    orientation_error,
    pa_mpjpe,
    point_to_surface_distance,
    pve,
    similarity_procrustes,
    torso_frame,
)


def _random_similarity(rng: np.random.Generator, batch: int):
    rotations = Rotation.random(batch, random_state=rng).as_matrix()
    scales = rng.uniform(0.5, 2.0, size=batch)
    translations = rng.normal(size=(batch, 3))
    return rotations, scales, translations


def _apply(points, rotations, scales, translations):
    return scales[:, None, None] * points @ rotations.transpose(0, 2, 1) + translations[:, None]


# ---------------------------------------------------------------- MPJPE / PVE


def test_mpjpe_root_alignment_removes_translation_and_keeps_known_offset():
    gt = torch.rand(2, 17, 3, dtype=torch.float64)
    shifted = gt + torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64)
    assert torch.allclose(mpjpe(shifted, gt), torch.zeros(2, dtype=torch.float64), atol=1e-9)
    # Without alignment the whole 3D offset is the error: |(0.3, -0.2, 1.0)| m.
    assert torch.allclose(mpjpe(shifted, gt, root=None), torch.full((2,), 1000 * np.sqrt(1.13), dtype=torch.float64))
    # Move only the left wrist by 3 cm: mean over 17 joints, hips untouched.
    moved = gt.clone()
    moved[:, 9, 1] += 0.03
    assert torch.allclose(mpjpe(moved, gt), torch.full((2,), 30 / 17, dtype=torch.float64))


def test_mpjpe_root_choices_agree_with_hand_computation():
    gt = torch.zeros(1, 3, 3)
    pred = torch.tensor([[[0.0, 0.0, 0.0], [0.01, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    # Root 0: joint 1 is 10 mm off. Root 1: joints 0 and 2 are 10 mm off. Root (0, 1): 5 mm each.
    assert mpjpe(pred, gt, root=0).item() == pytest.approx(10 / 3, rel=1e-5)
    assert mpjpe(pred, gt, root=1).item() == pytest.approx(20 / 3, rel=1e-5)
    assert mpjpe(pred, gt, root=(0, 1)).item() == pytest.approx(15 / 3, rel=1e-5)
    assert COCO_PELVIS == (11, 12)


def test_pve_pelvis_and_centroid_alignment():
    offset = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    gt = torch.rand(3, 50, 3, dtype=torch.float64)
    pred = gt + offset
    zero = torch.zeros(3, dtype=torch.float64)
    assert torch.allclose(pve(pred, gt), zero, atol=1e-9)  # centroid alignment
    roots = torch.zeros(3, 3, dtype=torch.float64)
    # Roots that do not follow the translation: every vertex is |(1, 2, 3)| m off.
    assert torch.allclose(pve(pred, gt, roots, roots), torch.full_like(zero, 1000 * np.sqrt(14.0)))
    # Roots that do follow it: zero error.
    assert torch.allclose(pve(pred, gt, roots + offset, roots), zero, atol=1e-9)


# ---------------------------------------------------------------- Procrustes


def test_similarity_procrustes_recovers_a_random_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(8, 17, 3))
    rotations, scales, translations = _random_similarity(rng, 8)
    dst = _apply(src, rotations, scales, translations)
    aligned, rotation, scale, translation = similarity_procrustes(torch.tensor(src), torch.tensor(dst))
    np.testing.assert_allclose(rotation.numpy(), rotations, atol=1e-9)
    np.testing.assert_allclose(scale.numpy(), scales, rtol=1e-9)
    np.testing.assert_allclose(translation.numpy(), translations, atol=1e-9)
    np.testing.assert_allclose(aligned.numpy(), dst, atol=1e-9)
    assert pa_mpjpe(torch.tensor(src), torch.tensor(dst)).abs().max() < 1e-6
    # float32 (the training dtype) is accurate to far below a millimetre too.
    assert pa_mpjpe(torch.tensor(src).float(), torch.tensor(dst).float()).max() < 1e-2


def test_pa_mpjpe_matches_scipy_procrustes_with_noise():
    rng = np.random.default_rng(1)
    gt = rng.normal(scale=0.3, size=(16, 17, 3))
    rotations, scales, translations = _random_similarity(rng, 16)
    pred = _apply(gt, rotations, scales, translations) + rng.normal(scale=0.02, size=gt.shape)
    expected = []
    for p, g in zip(pred, gt, strict=True):
        # scipy standardises both sets (centred, unit Frobenius norm) and fits pred onto gt.
        _, p_fit, _ = procrustes(g, p)
        g_centred = g - g.mean(axis=0)
        aligned = p_fit * np.linalg.norm(g_centred) + g.mean(axis=0)
        expected.append(1000 * np.linalg.norm(aligned - g, axis=1).mean())
    got = pa_mpjpe(torch.tensor(pred), torch.tensor(gt)).numpy()
    assert got.min() > 1.0  # the noise is real, so this is not a trivial zero
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_procrustes_never_returns_a_reflection():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(4, 17, 3))
    dst = src * np.array([-1.0, 1.0, 1.0]) + rng.normal(scale=0.01, size=src.shape)  # mirrored
    _, rotation, scale, _ = similarity_procrustes(torch.tensor(src), torch.tensor(dst))
    np.testing.assert_allclose(torch.det(rotation).numpy(), np.ones(4), atol=1e-9)
    assert (scale > 0).all()
    for b in range(4):
        # scipy's Kabsch solution (proper rotation) of the centred sets.
        kabsch, _ = Rotation.align_vectors(dst[b] - dst[b].mean(0), src[b] - src[b].mean(0))
        np.testing.assert_allclose(rotation[b].numpy(), kabsch.as_matrix(), atol=1e-6)


def test_pa_mpjpe_is_differentiable():
    pred = torch.randn(4, 17, 3, requires_grad=True)
    gt = torch.randn(4, 17, 3)
    pa_mpjpe(pred, gt).sum().backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


# ---------------------------------------------------------------- global orientation

# A person standing in their own frame (metres): x to their left, y up, z out of their front.
_STANDING = np.array(
    [
        [0.0, 1.62, 0.08],  # nose
        [0.03, 1.65, 0.06],
        [-0.03, 1.65, 0.06],
        [0.07, 1.63, 0.0],
        [-0.07, 1.63, 0.0],  # eyes, ears
        [0.19, 1.42, 0.0],
        [-0.19, 1.42, 0.0],
        [0.22, 1.15, 0.0],
        [-0.22, 1.15, 0.0],  # shoulders, elbows
        [0.24, 0.88, 0.05],
        [-0.24, 0.88, 0.05],  # wrists
        [0.1, 0.95, 0.0],
        [-0.1, 0.95, 0.0],
        [0.1, 0.5, 0.02],
        [-0.1, 0.5, 0.02],  # hips, knees
        [0.1, 0.07, -0.02],
        [-0.1, 0.07, -0.02],  # ankles
    ]
)


def _skeletons(rng: np.random.Generator, batch: int) -> np.ndarray:
    """``batch`` standing COCO-17 skeletons, each joint moved by a few centimetres."""
    return _STANDING + rng.normal(scale=0.03, size=(batch, 17, 3))


def test_torso_frame_of_a_standing_person_is_left_up_front():
    frame = torso_frame(torch.tensor(_STANDING[None]))
    np.testing.assert_allclose(frame[0].numpy(), np.eye(3), atol=1e-12)


def test_orientation_error_is_the_angle_of_the_rotation_applied():
    rng = np.random.default_rng(4)
    # Random axes; random angles plus the edge cases 0, a hundredth of a degree, 90 and 180.
    angles = np.radians(np.concatenate([rng.uniform(0.0, 180.0, 27), [0.0, 0.01, 90.0, 179.99, 180.0]]))
    axes = rng.normal(size=(len(angles), 3))
    rotations = Rotation.from_rotvec(axes / np.linalg.norm(axes, axis=1, keepdims=True) * angles[:, None])
    gt = _skeletons(rng, len(angles))
    scales = rng.uniform(0.5, 2.0, size=len(angles))
    translations = rng.normal(size=(len(angles), 3))
    # The rotation turns the skeleton about an arbitrary point; scale and translation do not count.
    pred = _apply(gt, rotations.as_matrix(), scales, translations)
    expected = np.degrees(rotations.magnitude())
    got = orientation_error(torch.tensor(pred), torch.tensor(gt))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-9)
    got32 = orientation_error(torch.tensor(pred).float(), torch.tensor(gt).float())
    np.testing.assert_allclose(got32.numpy(), expected, atol=2e-3)  # float32: still near 0° and 180°
    # The error is symmetric: the angle of R^T is the angle of R.
    np.testing.assert_allclose(orientation_error(torch.tensor(gt), torch.tensor(pred)).numpy(), expected, atol=1e-9)


def test_orientation_error_ignores_limbs_and_head_and_sees_a_turned_back():
    gt = torch.tensor(_skeletons(np.random.default_rng(5), 2))
    moved = gt.clone()
    torso = [5, 6, 11, 12]
    moved[:, [i for i in range(17) if i not in torso]] += 0.2 * torch.randn(2, 13, 3, dtype=torch.float64)
    np.testing.assert_allclose(orientation_error(moved, gt).numpy(), [0.0, 0.0], atol=1e-9)
    # Turned round on the spot (180° about the vertical): facing away from where they faced.
    turned = gt * torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64)
    np.testing.assert_allclose(orientation_error(turned, gt).numpy(), [180.0, 180.0], atol=1e-9)
    with pytest.raises(ValueError, match="COCO-17"):
        orientation_error(gt[:, :16], gt[:, :16])


# ---------------------------------------------------------------- surfaces


def _mesh(mesh: trimesh.Trimesh) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(mesh.vertices, dtype=torch.float32), torch.tensor(mesh.faces)


def _deformed_sphere() -> trimesh.Trimesh:
    """An uneven blob: ellipsoid with a bump, so triangle sizes vary by a factor of several."""
    mesh = trimesh.creation.icosphere(subdivisions=3)
    v = mesh.vertices * np.array([0.3, 0.5, 0.9])
    v = v + 0.15 * np.exp(-8 * ((v[:, :1] - 0.3) ** 2)) * np.array([1.0, 0.0, 0.0])
    return trimesh.Trimesh(v, mesh.faces, process=False)


def _assert_matches_trimesh(mesh: trimesh.Trimesh, points: np.ndarray, atol: float) -> None:
    """point_to_surface_distance equals trimesh's closest-point distance on the same points."""
    _, expected, _ = trimesh.proximity.closest_point(mesh, points)
    verts, faces = _mesh(mesh)
    query = torch.tensor(points, dtype=torch.float32)[None]
    got = point_to_surface_distance(query, verts[None], faces)
    assert got.shape == (1, len(points))
    np.testing.assert_allclose(got[0].numpy(), expected, atol=atol)


def test_point_to_surface_matches_trimesh_closest_point():
    target = _deformed_sphere()
    other = trimesh.creation.icosphere(subdivisions=4, radius=0.6)
    rng = np.random.default_rng(3)
    near = other.sample(1500, seed=4)  # on a different surface: inside and outside the target
    far = rng.normal(size=(300, 3)) * rng.uniform(1, 20, size=(300, 1))  # exercises the fallback
    _assert_matches_trimesh(target, np.concatenate([near, far]), atol=1e-5)  # 1e-3 cm


def test_point_to_surface_finds_a_large_triangle_behind_many_small_ones():
    # A 10 m triangle at z=0 under a 20x20 grid of 5 cm triangles at z=0.5: seen from just above
    # the large one, the nearest triangle *centroids* all belong to the small grid.
    grid = trimesh.creation.box(extents=(1, 1, 0.01)).subdivide_to_size(0.05)
    grid.apply_translation((6.0, 1.0, 0.5))
    big = trimesh.Trimesh([[0, 0, 0], [10, 0, 0], [0, 10, 0]], [[0, 1, 2]], process=False)
    mesh = trimesh.util.concatenate([grid, big])
    points = np.array([[6.0, 1.0, 0.05], [6.2, 0.9, 0.2], [5.5, 1.3, -0.3], [6.0, 1.0, 0.6]])
    _assert_matches_trimesh(mesh, points, atol=1e-5)


def test_point_to_surface_with_small_triangles_in_metres():
    # A millimetre-scale mesh: PyTorch3D's default area threshold would measure to the edges.
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.004)
    points = np.array([[0.0, 0.0, 0.0045], [0.001, 0.0, 0.0], [0.0, -0.01, 0.0]])
    _assert_matches_trimesh(mesh, points, atol=1e-7)


def test_point_to_surface_gradient_points_along_the_normal():
    verts = torch.tensor([[[-1.0, -1.0, 0.0], [2.0, -1.0, 0.0], [-1.0, 2.0, 0.0]]], requires_grad=True)
    points = torch.tensor([[[0.1, 0.2, 0.3], [0.2, 0.1, -0.5]]], requires_grad=True)
    dist = point_to_surface_distance(points, verts, torch.tensor([[0, 1, 2]]))
    assert torch.allclose(dist, torch.tensor([[0.3, 0.5]]))
    dist.sum().backward()
    assert torch.allclose(points.grad, torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]]), atol=1e-6)
    assert torch.allclose(verts.grad[0, :, 2].sum(), torch.tensor(0.0), atol=1e-6)  # ±1 cancel


def test_chamfer_of_concentric_spheres_is_the_radius_gap():
    sphere = trimesh.creation.icosphere(subdivisions=4)
    verts, faces = _mesh(sphere)
    pred = verts[None].clone().requires_grad_(True)
    out = chamfer_p2s(pred, faces, 1.1 * verts[None], faces, num_samples=4000, seed=0)
    # The icosphere's flat faces sit at most 0.06 cm inside the unit sphere.
    assert out["chamfer_cm"].item() == pytest.approx(10.0, abs=0.05)
    assert out["p2s_cm"].item() == pytest.approx(10.0, abs=0.05)
    assert out["normal_consistency"].item() > 0.999
    # Differentiable: growing the predicted sphere towards the target lowers the Chamfer.
    out["chamfer_cm"].sum().backward()
    assert (pred.grad * pred).sum(dim=-1).lt(0).float().mean() > 0.99


def test_chamfer_p2s_directions_are_not_swapped():
    # The ground truth is a unit sphere, the prediction only half of it: every GT sample on the
    # missing half is far from the prediction (P2S large) but every prediction sample lies on GT.
    sphere = trimesh.creation.icosphere(subdivisions=3)
    keep = sphere.triangles_center[:, 2] > 0
    verts, faces = _mesh(sphere)
    out = chamfer_p2s([verts], [faces[torch.from_numpy(keep)]], [verts], [faces], num_samples=2000, seed=0)
    assert out["p2s_cm"].item() > 20
    assert out["chamfer_cm"].item() == pytest.approx(out["p2s_cm"].item() / 2, rel=1e-3)


def test_identical_meshes_give_zero_chamfer_and_unit_normal_consistency():
    verts, faces = _mesh(_deformed_sphere())
    out = chamfer_p2s(verts[None], faces, verts[None], faces, num_samples=2000, seed=1)
    assert out["chamfer_cm"].item() < 1e-4
    assert out["p2s_cm"].item() < 1e-4
    assert out["normal_consistency"].item() == pytest.approx(1.0, abs=1e-5)


def test_chamfer_p2s_lists_padded_and_seeds():
    small = _mesh(trimesh.creation.icosphere(2))
    big = _mesh(trimesh.creation.icosphere(3, radius=1.1))
    # Predictions (small, big) against ground truths (big, small): different vertex counts.
    gt_verts, gt_faces = [big[0], small[0]], [big[1], small[1]]

    def run(pred_verts, pred_faces, seed=None):
        return chamfer_p2s(pred_verts, pred_faces, gt_verts, gt_faces, num_samples=500, seed=seed)

    listed = run([small[0], big[0]], [small[1], big[1]], seed=7)
    # Concentric spheres 10 cm apart; the coarse one's flat faces sit up to 1.8 cm inside it.
    assert ((listed["chamfer_cm"] > 10.0) & (listed["chamfer_cm"] < 11.5)).all()
    # Padded input (vertices padded with unused zeros, faces with -1 rows) gives the same values.
    pad_v = torch.zeros(2, len(big[0]), 3)
    pad_v[0, : len(small[0])], pad_v[1] = small[0], big[0]
    pad_f = torch.full((2, len(big[1]), 3), -1)
    pad_f[0, : len(small[1])], pad_f[1] = small[1], big[1]
    padded = run(pad_v, pad_f, seed=7)
    for key in listed:
        assert torch.allclose(listed[key], padded[key], atol=1e-4)
    # A seed reproduces exactly and leaves the global generator alone; another seed differs.
    state = torch.random.get_rng_state()
    assert torch.equal(run(pad_v, pad_f, seed=7)["chamfer_cm"], padded["chamfer_cm"])
    assert not torch.equal(run(pad_v, pad_f, seed=8)["chamfer_cm"], padded["chamfer_cm"])
    assert torch.equal(state, torch.random.get_rng_state())
    # No seed: the global generator drives (and advances), so two calls differ.
    assert not torch.equal(run(pad_v, pad_f)["chamfer_cm"], run(pad_v, pad_f)["chamfer_cm"])


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: mpjpe(torch.zeros(2, 17), torch.zeros(2, 17)),
            r"pred must have shape \(B, J, 3\)",
        ),
        (
            lambda: mpjpe(torch.zeros(2, 17, 3), torch.zeros(2, 16, 3)),
            "pred and gt must have the same shape",
        ),
        (lambda: mpjpe(torch.zeros(2, 10, 3), torch.zeros(2, 10, 3)), r"indices in \[0, 10\)"),
        (
            lambda: pa_mpjpe(torch.zeros(1, 5, 3), torch.full((1, 5, 3), float("nan"))),
            "gt contains 15 NaN/inf",
        ),
        (
            lambda: pve(torch.zeros(1, 5, 3), torch.zeros(1, 5, 3), torch.zeros(1, 3)),
            "both root_pred and root_gt",
        ),
        (
            lambda: pve(torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), torch.zeros(3, 3), torch.zeros(3, 3)),
            r"root_pred must have shape \(2, 3\)",
        ),
        (
            lambda: point_to_surface_distance(torch.zeros(5, 3), torch.zeros(1, 3, 3), torch.tensor([[0, 1, 2]])),
            r"points must have shape \(B, P, 3\)",
        ),
        (
            lambda: point_to_surface_distance(torch.zeros(1, 5, 3), torch.zeros(1, 3, 3), torch.tensor([[0, 1, 3]])),
            "refers to vertex 3 but its mesh has 3 vertices",
        ),
        (
            lambda: chamfer_p2s(
                [torch.zeros(3, 3)],
                [torch.tensor([[0, 1, 2]])],
                [torch.zeros(3, 3), torch.zeros(3, 3)],
                [torch.tensor([[0, 1, 2]])] * 2,
            ),
            "same batch size",
        ),
        (
            lambda: chamfer_p2s(
                torch.zeros(1, 3, 3),
                torch.tensor([[0, 1, 2]]),
                torch.zeros(1, 3, 3),
                torch.tensor([[0, 1, 2]]),
                num_samples=0,
            ),
            "num_samples must be a positive int",
        ),
        (
            lambda: chamfer_p2s(
                [torch.tensor([[0.0, 0, 0], [1, 0, 0], [float("inf"), 0, 0]])],
                [torch.tensor([[0, 1, 2]])],
                [torch.zeros(3, 3)],
                [torch.tensor([[0, 1, 2]])],
            ),
            r"pred_vertices\[0\] contains 1 NaN/inf",
        ),
    ],
)
def test_bad_inputs_raise_value_errors_that_say_what_is_wrong(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_float_faces_are_a_type_error():
    with pytest.raises(TypeError, match=r"integer torch\.Tensor"):
        point_to_surface_distance(torch.zeros(1, 2, 3), torch.zeros(1, 3, 3), torch.zeros(1, 3))


def test_fraction_on_mask_counts_projected_points_on_the_person():
    from munet.metrics import fraction_on_mask

    K = np.array([[100.0, 0, 50], [0, 100.0, 50], [0, 0, 1]])
    mask = np.zeros((100, 100), bool)
    mask[40:61, 45:56] = True  # rows 40..60, columns 45..55
    points = np.array(
        [
            [0.0, 0.0, 2.0],  # pixel (50, 50): on
            [0.1, 0.0, 2.0],  # (55, 50): on, last column
            [0.12, 0.0, 2.0],  # (56, 50): off by one column
            [0.0, -0.2, 2.0],  # (50, 40): on, first row
            [5.0, 0.0, 2.0],  # outside the image
            [0.0, 0.0, -2.0],  # behind the camera
        ]
    )
    assert fraction_on_mask(points, K, mask) == pytest.approx(3 / 6)
    with pytest.raises(ValueError, match="expected points"):
        fraction_on_mask(points[:, :2], K, mask)
