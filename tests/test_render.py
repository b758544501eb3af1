"""Cameras and the headless renderer, checked against independent rasterisation and geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from munet.data.camera import Camera, resize_intrinsics, resize_pixels, sample_camera
from munet.data.render import Lighting, Renderer, opengl_projection
from munet.data.scene import sample_background, sample_lighting
from munet.geometry import project

SIZE = 128


@pytest.fixture(scope="module")
def renderer():
    with Renderer(SIZE, supersample=2) as instance:
        yield instance


@pytest.fixture(scope="module")
def body_mesh(anny_body):
    """A posed Anny body (arms moved, random phenotype) in the world frame."""
    generator = torch.Generator().manual_seed(3)
    pose = 0.15 * torch.randn(1, anny_body.pose_dim, generator=generator)
    pose[:, :3] = 0.0
    with torch.no_grad():
        out = anny_body(pose, torch.rand(1, anny_body.shape_dim, generator=generator))
    return out.vertices[0].numpy(), anny_body.faces.numpy(), out.joints[0].numpy()


def silhouette(vertices_cam: np.ndarray, faces: np.ndarray, K: np.ndarray, size: int) -> np.ndarray:
    """Independent rasterisation with OpenCV: every projected triangle filled at 8x resolution,
    a pixel is inside when at least half of it is covered (OpenCV's own fill is conservative)."""
    factor = 8
    pixels = project(vertices_cam, resize_intrinsics(K, factor))
    fine = np.zeros((size * factor, size * factor), np.uint8)
    for triangle in np.round(pixels[faces] * 16).astype(np.int32):
        cv2.fillConvexPoly(fine, triangle, 1, cv2.LINE_8, shift=4)
    coverage = cv2.resize(fine.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return coverage >= 0.5


def test_camera_json_round_trip_and_projection_convention():
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.5, 0.5, size=(200, 3)) + [0.0, 0.0, 0.9]
    camera = sample_camera(rng, points, SIZE)
    again = Camera.from_dict(camera.to_dict())
    np.testing.assert_array_equal(again.K, camera.K)
    np.testing.assert_array_equal(again.R, camera.R)
    np.testing.assert_allclose(camera.R @ camera.R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(camera.R) == pytest.approx(1.0)
    # The camera sits at -R^T t and every point is in front of it.
    cam_points = camera.world_to_camera(points)
    np.testing.assert_allclose(cam_points, (points - camera.center) @ camera.R.T, atol=1e-12)
    assert (cam_points[:, 2] > 0).all()
    # The crop frames the points: all project inside, with a margin.
    pixels = project(cam_points, camera.K)
    assert pixels.min() > 0 and pixels.max() < SIZE - 1
    # Resizing K and pixels agree with projecting through the resized K.
    np.testing.assert_allclose(
        resize_pixels(pixels, 0.5), project(cam_points, resize_intrinsics(camera.K, 0.5)), atol=1e-9
    )


def test_opengl_projection_matches_opencv():
    K = np.array([[150.0, 0.0, 60.3], [0.0, 140.0, 70.1], [0.0, 0.0, 1.0]])
    points = np.random.default_rng(1).uniform([-1, -1, 2], [1, 1, 4], size=(50, 3))
    clip = np.c_[points, np.ones(50)] @ opengl_projection(K, SIZE, 1.0, 5.0).T
    window = (clip[:, :2] / clip[:, 3:] + 1) / 2 * SIZE  # GL window coordinates
    np.testing.assert_allclose(window - 0.5, project(points, K), atol=1e-9)
    depth = clip[:, 2] / clip[:, 3]
    assert (np.abs(depth) < 1).all()


@pytest.mark.parametrize("supersample", [2, 1])
def test_pixel_exact_quad(renderer, supersample):
    """A camera-facing rectangle whose edges project to known pixel positions, with and without
    super-sampling (a pixel is covered when its centre is inside)."""
    if supersample == 1:
        with Renderer(SIZE, supersample=1) as plain:
            check_quad(plain)
    else:
        check_quad(renderer)


def check_quad(renderer: Renderer) -> None:
    K = np.array([[100.0, 0.0, 63.5], [0.0, 100.0, 63.5], [0.0, 0.0, 1.0]])
    z = 2.0
    (u0, u1), (v0, v1) = (9.6, 30.4), (40.6, 100.4)
    corners = np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]])
    vertices = np.c_[(corners - K[:2, 2]) * z / 100.0, np.full(4, z)]
    faces = np.array([[0, 2, 1], [0, 3, 2]])  # seen from the camera (-z), counter-clockwise
    background = np.full((SIZE, SIZE, 3), 17, np.uint8)
    frame = renderer.render(
        vertices, faces, np.full((4, 3), 0.5), K, Lighting(np.array([0.0, 0.0, 1.0]), 0.2, 0.6), background
    )
    expected = np.zeros((SIZE, SIZE), bool)
    expected[41:101, 10:31] = True  # pixel centres inside [u0, u1] x [v0, v1]
    np.testing.assert_array_equal(frame.mask, expected)
    np.testing.assert_allclose(frame.depth[expected], z, rtol=1e-5)
    assert (frame.depth[~expected] == 0).all()
    np.testing.assert_allclose(frame.normal[expected], np.tile([0.0, 0.0, -1.0], (expected.sum(), 1)), atol=1e-5)
    # Fully covered pixels: albedo 0.5 x (ambient 0.2 + diffuse 0.6 x cos 0) = 0.4; background elsewhere.
    assert np.abs(frame.image[expected].astype(int) - round(0.4 * 255)).max() <= 1
    assert (frame.image[~expected] == 17).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_matches_projected_silhouette(renderer, body_mesh, seed):
    vertices, faces, joints = body_mesh
    rng = np.random.default_rng(seed)
    camera = sample_camera(rng, vertices, SIZE)
    cam_vertices = camera.world_to_camera(vertices)
    scene = (np.full_like(cam_vertices, 0.6), camera.K, sample_lighting(rng), sample_background(rng, SIZE))
    frame = renderer.render(cam_vertices, faces, *scene)
    # The picture-only path (overlays) draws the same mask, and the image within one grey level.
    image, mask = renderer.render_picture(cam_vertices, faces, *scene)
    assert np.array_equal(mask, frame.mask)
    assert np.abs(image.astype(int) - frame.image).max() <= 1
    reference = silhouette(cam_vertices, faces, camera.K, SIZE)
    iou = (frame.mask & reference).sum() / (frame.mask | reference).sum()
    assert iou >= 0.97, f"IoU {iou:.4f}"
    # Every joint lies inside the body, so it projects inside the silhouette.
    pixels = np.round(project(camera.world_to_camera(joints), camera.K)).astype(int)
    assert frame.mask[pixels[:, 1], pixels[:, 0]].all()
    # Depth equals the camera-frame z of the surface: within the mesh's depth range, and the
    # normals face the camera (negative dot product with the viewing ray) almost everywhere.
    inside = frame.depth[frame.mask]
    assert inside.min() >= cam_vertices[:, 2].min() - 1e-3
    assert inside.max() <= cam_vertices[:, 2].max() + 1e-3
    rows, cols = np.nonzero(frame.mask)
    rays = np.c_[cols, rows, np.ones_like(rows)] @ np.linalg.inv(camera.K).T
    facing = np.einsum("nc,nc->n", frame.normal[rows, cols], rays)
    assert (facing < 0.05).mean() > 0.97
    np.testing.assert_allclose(np.linalg.norm(frame.normal[frame.mask], axis=-1), 1.0, atol=1e-4)
