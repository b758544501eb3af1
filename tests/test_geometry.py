"""munet.geometry against hand-computed cases and independent references (OpenCV's projection,
trimesh's topology checks, SciPy's rotations): projection, normals, the manifold check, the uniform
Laplacian, joint regression, and the PyTorch3D rotations the project relies on."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import trimesh
from pytorch3d.transforms import axis_angle_to_matrix, matrix_to_axis_angle
from scipy.spatial.transform import Rotation

from munet.geometry import (
    MIN_DEPTH,
    face_normals,
    manifold_defects,
    project,
    regress_joints,
    uniform_laplacian,
    vertex_normals,
)
from munet.graph import MeshGraph, normalized_adjacency

K_SKEWED = np.array([[500.0, 2.0, 32.0], [0.0, 400.0, 30.0], [0.0, 0.0, 1.0]])

TETRAHEDRON = (
    np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float),
    np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]),
)
"""Four vertices and outward (counter-clockwise seen from outside) faces."""

# A unit cube's corners are the bit patterns of their index (x = bit 0, y = bit 1, z = bit 2).
CUBE_VERTICES = np.array([[(i >> k) & 1 for k in range(3)] for i in range(8)], dtype=float)
CUBE_FACES = np.array(
    [
        [0, 2, 3],
        [0, 3, 1],  # z = 0, seen from below
        [4, 5, 7],
        [4, 7, 6],  # z = 1
        [0, 1, 5],
        [0, 5, 4],  # y = 0
        [2, 6, 7],
        [2, 7, 3],  # y = 1
        [0, 4, 6],
        [0, 6, 2],  # x = 0
        [1, 3, 7],
        [1, 7, 5],  # x = 1
    ]
)


def _icosphere(subdivisions: int) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=subdivisions)


# ---------------------------------------------------------------------------------------------
# Projection


def test_a_known_point_lands_on_its_pixel():
    point = np.array([[0.2, -0.1, 2.0]])  # x / z = 0.1, y / z = -0.05
    expected = [[500 * 0.1 + 2 * -0.05 + 32, 400 * -0.05 + 30]]
    np.testing.assert_allclose(project(point, K_SKEWED), expected, atol=1e-12)
    # On the optical axis: the principal point, whatever the depth.
    np.testing.assert_allclose(project(np.array([[0.0, 0.0, 7.0]]), K_SKEWED), [[32.0, 30.0]])


def test_projection_agrees_with_opencv():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 3)) + [0.0, 0.0, 4.0]
    K = K_SKEWED * [[1.0, 0.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]  # OpenCV's cameras have no skew
    expected, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), K, None)
    np.testing.assert_allclose(project(points, K), expected[:, 0], atol=1e-9)


def test_numpy_and_torch_projections_agree_and_keep_their_kind():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(2, 20, 3)) + [0.0, 0.0, 3.0]
    K = np.stack([K_SKEWED, K_SKEWED * [[0.5], [0.5], [1.0]]])
    batched = project(torch.tensor(points, dtype=torch.float32), torch.tensor(K, dtype=torch.float32))
    assert isinstance(batched, torch.Tensor) and batched.dtype == torch.float32
    assert batched.shape == (2, 20, 2)
    for b in range(2):
        single = project(points[b].astype(np.float32), K[b])
        assert isinstance(single, np.ndarray) and single.dtype == np.float64
        np.testing.assert_allclose(batched[b].numpy(), single, rtol=1e-5)
    # Each point set uses its own intrinsics: the second camera has half the focal length.
    assert not np.allclose(project(points[1], K[0]), project(points[1], K[1]))


def test_projection_is_differentiable_and_finite_at_the_camera_plane():
    points = torch.tensor([[[0.1, 0.2, 0.0], [0.1, 0.2, -1.0]]], dtype=torch.float64, requires_grad=True)
    K = torch.tensor(K_SKEWED)[None]
    pixels = project(points, K)
    # Depths clamped to MIN_DEPTH: far off the image, but finite.
    expected = [500 * 0.1 / MIN_DEPTH + 2 * 0.2 / MIN_DEPTH + 32, 400 * 0.2 / MIN_DEPTH + 30]
    np.testing.assert_allclose(pixels.detach()[0].numpy(), [expected, expected])
    pixels.sum().backward()
    assert torch.isfinite(points.grad).all()


def test_projection_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"points must have shape \(\.\.\., N, 3\)"):
        project(np.zeros((4, 2)), K_SKEWED)
    with pytest.raises(ValueError, match=r"K must have shape \(2, 3, 3\)"):
        project(torch.zeros(2, 4, 3), torch.eye(3)[None])


# ---------------------------------------------------------------------------------------------
# Normals


def test_face_normal_of_a_known_triangle():
    vertices = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    # Counter-clockwise seen from +z: the normal is +z, as long as twice the area (2 * 3).
    np.testing.assert_allclose(face_normals(vertices, np.array([[0, 1, 2]])), [[0.0, 0.0, 6.0]])
    np.testing.assert_allclose(face_normals(vertices, np.array([[0, 2, 1]])), [[0.0, 0.0, -6.0]])


def test_cube_vertex_normals_point_along_the_diagonals():
    normals = vertex_normals(CUBE_VERTICES, CUBE_FACES)
    # Every corner's normal points away from the centre, into the corner's own octant.
    outward = (CUBE_VERTICES - 0.5) * 2
    assert (np.sign(normals) == outward).all()
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0)
    # Corners 0 and 7 are in both triangles of each of their three squares: exactly the diagonal.
    np.testing.assert_allclose(normals[[0, 7]], outward[[0, 7]] / np.sqrt(3), atol=1e-12)


def test_tetrahedron_normals_point_outwards_and_flip_with_the_faces():
    vertices, faces = TETRAHEDRON
    centre = vertices.mean(axis=0)
    normals = vertex_normals(vertices, faces)
    assert ((normals * (vertices - centre)).sum(axis=1) > 0).all()
    per_face = face_normals(vertices, faces)
    assert ((per_face * (vertices[faces].mean(axis=1) - centre)).sum(axis=1) > 0).all()
    np.testing.assert_allclose(vertex_normals(vertices, faces[:, ::-1]), -normals)
    # The origin's three faces are the coordinate planes, each of area 1/2: the diagonal, inwards.
    np.testing.assert_allclose(normals[0], -np.ones(3) / np.sqrt(3))


def test_sphere_vertex_normals_are_radial_for_a_batch_of_tensors():
    sphere = _icosphere(3)
    vertices = torch.tensor(sphere.vertices, dtype=torch.float32)
    faces = torch.tensor(sphere.faces)
    batch = torch.stack([vertices, 2.0 * vertices + torch.tensor([1.0, -2.0, 0.5])])
    normals = vertex_normals(batch, faces)
    assert normals.shape == batch.shape and normals.dtype == torch.float32
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(2, len(vertices)))
    # A unit icosphere's vertex normals are its radial directions, up to the facet discretisation.
    radial = vertices / vertices.norm(dim=1, keepdim=True)
    assert (normals * radial).sum(dim=-1).min() > 0.999
    # The NumPy path is the same formula: bit for bit the float64 tensor path, whatever the threads.
    np.testing.assert_allclose(vertex_normals(sphere.vertices, sphere.faces), normals[0].numpy(), atol=1e-6)
    wide = 2.0 * sphere.vertices + [1.0, -2.0, 0.5]
    exact = vertex_normals(torch.tensor(wide), faces).numpy()
    threads = torch.get_num_threads()
    try:
        for count in (1, 3):
            torch.set_num_threads(count)
            assert np.array_equal(vertex_normals(wide, sphere.faces), exact)
    finally:
        torch.set_num_threads(threads)


def test_vertex_normals_are_differentiable_and_zero_on_an_unused_vertex():
    vertices = torch.tensor(np.vstack([TETRAHEDRON[0], [[5.0, 5.0, 5.0]]]), requires_grad=True)
    normals = vertex_normals(vertices, torch.tensor(TETRAHEDRON[1]))
    assert torch.equal(normals[4].detach(), torch.zeros(3, dtype=torch.float64))
    normals[:4].sum().backward()
    assert torch.isfinite(vertices.grad).all() and vertices.grad[:4].abs().sum() > 0


def test_normals_reject_bad_shapes():
    with pytest.raises(ValueError, match=r"vertices must have shape \(\.\.\., V, 3\)"):
        vertex_normals(np.zeros((4, 2)), TETRAHEDRON[1])
    with pytest.raises(ValueError, match=r"faces must have shape \(F, 3\)"):
        face_normals(TETRAHEDRON[0], TETRAHEDRON[1][:, :2])


# ---------------------------------------------------------------------------------------------
# Manifold check


@pytest.mark.parametrize("name", ["tetrahedron", "cube", "icosphere"])
def test_closed_oriented_meshes_pass_as_trimesh_agrees(name: str):
    vertices, faces = {
        "tetrahedron": TETRAHEDRON,
        "cube": (CUBE_VERTICES, CUBE_FACES),
        "icosphere": (_icosphere(2).vertices, _icosphere(2).faces),
    }[name]
    reference = trimesh.Trimesh(vertices, faces, process=False)
    assert reference.is_watertight and reference.is_winding_consistent and reference.volume > 0
    assert manifold_defects(faces, len(vertices)) == []
    assert manifold_defects(torch.tensor(faces, dtype=torch.int32), len(vertices)) == []


def test_a_hole_is_found():
    sphere = _icosphere(1)
    holed = sphere.faces[1:]
    assert not trimesh.Trimesh(sphere.vertices, holed, process=False).is_watertight
    assert manifold_defects(holed, len(sphere.vertices)) == ["3 edges border one face only (holes)"]


def test_a_non_manifold_edge_is_found():
    sphere = _icosphere(1)
    u, v = sphere.edges_unique[0]
    # A two-sided fin hinged on edge (u, v): its own edges to the tip are closed, but (u, v) is
    # then shared by four faces.
    tip = len(sphere.vertices)
    vertices = np.vstack([sphere.vertices, 1.5 * sphere.vertices[[u, v]].mean(axis=0)])
    faces = np.vstack([sphere.faces, [[u, v, tip], [v, u, tip]]])
    assert not trimesh.Trimesh(vertices, faces, process=False).is_watertight
    assert manifold_defects(faces, len(vertices)) == ["1 edges are shared by more than two faces"]


def test_a_flipped_face_is_found():
    vertices, faces = TETRAHEDRON
    flipped = faces.copy()
    flipped[0] = flipped[0, ::-1]
    assert not trimesh.Trimesh(vertices, flipped, process=False).is_winding_consistent
    assert manifold_defects(flipped, 4) == [
        "3 edges are traversed in the same direction by both their faces (inconsistent orientation)"
    ]


def test_a_pinched_vertex_is_found():
    # Two tetrahedra touching at vertex 0: every edge has two faces (trimesh calls it watertight)
    # but vertex 0 has two separate fans, so it is not a 2-manifold.
    faces = TETRAHEDRON[1]
    pinched = np.concatenate([faces, np.where(faces == 0, 0, faces + 3)])
    vertices = np.vstack([TETRAHEDRON[0], -TETRAHEDRON[0][1:]])
    assert trimesh.Trimesh(vertices, pinched, process=False).is_watertight
    assert manifold_defects(pinched, 7) == [
        "1 extra face fans: some vertices join several surface sheets (non-manifold vertices)"
    ]


def test_degenerate_faces_and_unused_vertices_are_found():
    faces = TETRAHEDRON[1]
    assert manifold_defects(np.vstack([faces, [[1, 1, 2]]]), 4) == ["1 faces repeat a vertex"]
    assert manifold_defects(faces, 5) == ["1 vertices are used by no face"]
    with pytest.raises(ValueError, match=r"faces must have shape \(F, 3\) with F >= 1"):
        manifold_defects(np.zeros((0, 3), dtype=int), 4)


# ---------------------------------------------------------------------------------------------
# Uniform Laplacian

PATH = torch.tensor([[0, 1], [1, 2]])
"""The path graph 0 - 1 - 2."""


def test_laplacian_on_a_path_by_hand():
    linear = torch.tensor([[[0.0], [1.0], [2.0]]])
    # Open: (0 - 1, 1 - (0 + 2) / 2, 2 - 1). Closed: (0 - 1/2, 1 - 3/3, 2 - 3/2).
    torch.testing.assert_close(uniform_laplacian(linear, PATH), torch.tensor([[[-1.0], [0.0], [1.0]]]))
    torch.testing.assert_close(uniform_laplacian(linear, PATH, closed=True), torch.tensor([[[-0.5], [0.0], [0.5]]]))


@pytest.mark.parametrize("closed", [False, True])
def test_laplacian_of_a_constant_field_is_zero(closed: bool):
    sphere = MeshGraph.from_arrays(_icosphere(2).vertices, _icosphere(2).faces)
    constant = torch.full((2, 3, sphere.num_vertices, 4), 7.0)
    assert uniform_laplacian(constant, sphere.edges, closed).abs().max() < 1e-5


def test_closed_laplacian_is_identity_minus_the_row_normalised_adjacency():
    sphere = MeshGraph.from_arrays(_icosphere(1).vertices, _icosphere(1).faces)
    field = torch.randn(2, sphere.num_vertices, 3, generator=torch.Generator().manual_seed(0))
    adjacency = normalized_adjacency(sphere.edges, sphere.num_vertices, "row").to_dense()
    expected = field - adjacency @ field
    torch.testing.assert_close(uniform_laplacian(field, sphere.edges, closed=True), expected)
    # ... and deg / (deg + 1) times the open one.
    degree = torch.bincount(sphere.edges.reshape(-1), minlength=sphere.num_vertices)[:, None]
    torch.testing.assert_close(uniform_laplacian(field, sphere.edges) * degree / (degree + 1), expected)


def test_laplacian_of_an_isolated_vertex_and_its_gradient():
    field = torch.tensor([[[0.0], [1.0], [2.0], [5.0]]], requires_grad=True)  # vertex 3 has no edge
    assert float(uniform_laplacian(field.detach(), PATH)[0, 3, 0]) == 5.0
    assert float(uniform_laplacian(field.detach(), PATH, closed=True)[0, 3, 0]) == 0.0
    uniform_laplacian(field, PATH)[0, 1, 0].backward()
    torch.testing.assert_close(field.grad[0, :, 0], torch.tensor([-0.5, 1.0, -0.5, 0.0]))


# ---------------------------------------------------------------------------------------------
# Joint regression


def test_regressed_joints_are_the_prescribed_vertex_means():
    vertices = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 4.0, 0.0], [1.0, 1.0, 1.0]]])
    regressor = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.25, 0.75]])
    expected = torch.tensor([[[1.0, 0.0, 0.0], [0.75, 1.75, 0.75]]])
    torch.testing.assert_close(regress_joints(regressor, vertices), expected)
    # Leading dimensions of any number, and the regressor cast to the vertices' dtype.
    stacked = torch.stack([vertices, 2 * vertices]).double()
    joints = regress_joints(regressor, stacked)
    assert joints.shape == (2, 1, 2, 3) and joints.dtype == torch.float64
    torch.testing.assert_close(joints[1], 2 * expected.double())


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_sparse_and_dense_regressors_agree(layout: str):
    generator = torch.Generator().manual_seed(0)
    dense = torch.rand(5, 30, generator=generator) * (torch.rand(5, 30, generator=generator) < 0.2)
    sparse = dense.to_sparse() if layout == "coo" else dense.to_sparse_csr()
    vertices = torch.randn(3, 2, 30, 3, generator=generator, requires_grad=True)
    joints = regress_joints(sparse, vertices)
    torch.testing.assert_close(joints, regress_joints(dense, vertices))
    joints.sum().backward()
    torch.testing.assert_close(vertices.grad, dense.sum(0)[None, None, :, None].expand(3, 2, 30, 3))


def test_regression_rejects_another_topology():
    with pytest.raises(ValueError, match=r"vertices must have shape \(\.\.\., 4, 3\)"):
        regress_joints(torch.ones(2, 4) / 4, torch.zeros(1, 5, 3))


# ---------------------------------------------------------------------------------------------
# Rotations: PyTorch3D's, where the project once had its own formulas


def test_axis_angle_to_matrix_matches_scipy_and_is_differentiable_at_zero():
    rotvec = torch.tensor(
        [[0.0, 0.0, 0.0], [1e-6, -2e-6, 0.0], [0.3, -1.2, 0.5], [2.0, 0.1, -0.4]], dtype=torch.float64
    )
    expected = Rotation.from_rotvec(rotvec.numpy()).as_matrix()
    np.testing.assert_allclose(axis_angle_to_matrix(rotvec).numpy(), expected, atol=1e-12)
    # The fit starts its rotation at zero: the derivative there is the cross-product matrix.
    zero = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    axis_angle_to_matrix(zero)[0, 1, 0].backward()
    np.testing.assert_allclose(zero.grad.numpy(), [[0.0, 0.0, 1.0]])


def test_a_turn_about_one_axis_is_the_textbook_matrix():
    angle = 0.3
    c, s = np.cos(angle), np.sin(angle)
    about_z = axis_angle_to_matrix(torch.tensor([0.0, 0.0, angle], dtype=torch.float64)).numpy()
    np.testing.assert_allclose(about_z, [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], atol=1e-15)
    about_y = axis_angle_to_matrix(torch.tensor([0.0, angle, 0.0], dtype=torch.float64)).numpy()
    np.testing.assert_allclose(about_y, [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], atol=1e-15)


def test_rotation_angle_stays_accurate_near_0_and_180_degrees():
    degrees = np.array([0.0, 1e-4, 37.0, 90.0, 179.999, 180.0])
    axes = np.random.default_rng(2).normal(size=(len(degrees), 3))
    rotvec = axes / np.linalg.norm(axes, axis=1, keepdims=True) * np.radians(degrees)[:, None]
    matrices = torch.tensor(Rotation.from_rotvec(rotvec).as_matrix())
    angles = np.degrees(matrix_to_axis_angle(matrices).norm(dim=-1).numpy())
    np.testing.assert_allclose(angles, degrees, atol=1e-9)
