"""Synthetic training samples for model tests, built from the real Anny body.

A stand-in for the data engine's decoded samples (same contract, see the project's sample schema):
random poses and shapes, a camera facing the person, a painter's-algorithm render of the body
coloured by its normals (with its mask), and "clothes" that are the body surface pushed out along
its normals by a smooth, sample-dependent offset. Swap :func:`make_samples` for real shards once
they exist.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from pytorch3d.transforms import axis_angle_to_matrix

from munet.body import BodyModel
from munet.geometry import face_normals, project, vertex_normals
from munet.model.templates import ANNY_TO_CAMERA


def _face_normals(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit face normals (F, 3) and face areas (F,)."""
    cross = face_normals(vertices, faces)
    area = 0.5 * np.linalg.norm(cross, axis=1)
    return cross / np.maximum(2.0 * area, 1e-12)[:, None], area


def _render(vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Painter's-algorithm render: RGB (3, S, S) in [0, 1] coloured by face normals, mask (1, S, S)."""
    pixels = project(vertices, K)
    normals, _ = _face_normals(vertices, faces)
    order = np.argsort(-vertices[faces].mean(axis=1)[:, 2])  # far faces first
    shift = 4  # sub-pixel precision of cv2.fillConvexPoly
    corners = np.round(pixels[faces] * (1 << shift)).astype(np.int32)
    image = np.full((size, size, 3), 0.2, dtype=np.float32)
    mask = np.zeros((size, size), dtype=np.uint8)
    for f in order:
        colour = tuple(float(c) for c in 0.5 + 0.5 * normals[f])
        cv2.fillConvexPoly(image, corners[f], colour, lineType=cv2.LINE_8, shift=shift)
        cv2.fillConvexPoly(mask, corners[f], 1, lineType=cv2.LINE_8, shift=shift)
    return image.transpose(2, 0, 1).copy(), mask[None].astype(np.float32)


def _surface_points(
    vertices: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points uniformly on the surface (by area) and their face normals."""
    normals, area = _face_normals(vertices, faces)
    chosen = rng.choice(len(faces), size=count, p=area / area.sum())
    u, v = rng.random((2, count))
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    tri = vertices[faces[chosen]]
    points = tri[:, 0] + u[:, None] * (tri[:, 1] - tri[:, 0]) + v[:, None] * (tri[:, 2] - tri[:, 0])
    return points, normals[chosen]


def make_samples(
    body: BodyModel,
    count: int = 8,
    image_size: int = 64,
    cloth_points: int = 512,
    seed: int = 0,
    max_yaw: float = 0.0,
) -> list[dict[str, np.ndarray]]:
    """``count`` decoded samples (dicts of float32 arrays) of random Anny people.

    Poses are Gaussian per-bone rotations (0.12 rad), shapes uniform in [0.2, 0.8]; the person
    stands 3–3.5 m in front of the camera, turned about the vertical by a yaw uniform in
    ``[-max_yaw, max_yaw]`` degrees (0: facing the camera); the clothed surface is the body pushed out along its
    vertex normals by 1–5 cm (smoothly varying with height). Besides the contract's entries, each
    sample holds ``cloth_vertices`` (13,348, 3): that clothed mesh (the body's faces), for
    evaluation.
    """
    rng = np.random.default_rng(seed)
    pose = torch.from_numpy(rng.normal(0.0, 0.12, (count, body.pose_dim))).float()
    shape = torch.from_numpy(rng.uniform(0.2, 0.8, (count, body.shape_dim))).float()
    with torch.no_grad():
        out = body(pose, shape)
    rotation = ANNY_TO_CAMERA.numpy()
    faces = body.faces.numpy()
    focal = 1.4 * image_size
    K = np.array([[focal, 0, (image_size - 1) / 2], [0, focal, (image_size - 1) / 2], [0, 0, 1]], np.float32)
    # Drawn only when asked, so the samples of max_yaw = 0 stay those of earlier versions.
    yaws = np.radians(rng.uniform(-max_yaw, max_yaw, count)) if max_yaw > 0 else np.zeros(count)
    samples = []
    for i in range(count):
        root = out.joints[i, [11, 12]].mean(dim=0).numpy()
        place = np.array([rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), rng.uniform(3.0, 3.5)])
        yaw = torch.tensor([0.0, yaws[i], 0.0], dtype=torch.float64)
        turn = axis_angle_to_matrix(yaw).numpy() @ rotation  # about the camera's y
        vertices = (out.vertices[i].numpy() - root) @ turn.T + place
        joints = (out.joints[i].numpy() - root) @ turn.T + place
        image, mask = _render(vertices, faces, K, image_size)
        height = (vertices[:, 1] - place[1]) / 0.9  # about -1 (head) .. 1 (feet)
        thickness = rng.uniform(0.01, 0.03) + rng.uniform(0.0, 0.02) * (0.5 + 0.5 * np.sin(3.0 * height + i))
        clothed = vertices + thickness[:, None] * vertex_normals(vertices, faces)
        points, normals = _surface_points(clothed, faces, cloth_points, rng)
        samples.append(
            {
                "image": image,
                "mask": mask,
                "K": K.copy(),
                "body_vertices": vertices.astype(np.float32),
                "body_joints": joints.astype(np.float32),
                "joints_2d": project(joints, K).astype(np.float32),
                "body_pose": pose[i].numpy(),
                "body_shape": shape[i].numpy(),
                "cloth_points": points.astype(np.float32),
                "cloth_normals": normals.astype(np.float32),
                "cloth_vertices": clothed.astype(np.float32),
            }
        )
    return samples


def stack(samples: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack samples into one batch (batch first)."""
    return {key: np.stack([s[key] for s in samples]) for key in samples[0]}


SMALL_NETWORK = [
    "model.image_size=64",
    "data.image_size=64",
    "model.body_channels=32",
    "model.cloth_channels=32",
    "model.body_blocks=1",
    "model.cloth_blocks=1",
]
"""Config overrides of the small, fast network the model-level tests build (64 px crops)."""
