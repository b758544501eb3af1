"""The ICON/ECON scoring of a clothed reconstruction against a scan (Xiu et al., CVPR 2022/2023).

ICON and ECON score in a normalised frame in which the ground-truth scan is 1.8 units tall:

- **Chamfer** is the mean of the two point-to-surface directions and **P2S** the mean distance
  from ground-truth samples to the predicted surface, on 1,000 area-weighted samples per mesh,
  multiplied by 100 and reported as "cm" (nominal: 1 unit is 1 m only for a 1.8 m person).
  The distances are :func:`munet.metrics.surface.chamfer_p2s`'s (exact point-to-triangle).
- **NC** (their "normal consistency", lower is better) compares normal renders: both meshes are
  rendered from 4 cameras around the vertical axis (front, right, back, left), the per-pixel
  unit normals are compared as ``|n_pred − n_gt|²`` with a zero normal where a mesh does not
  cover the pixel, and the value is the mean over *every* pixel of the 4 images. ICON's public
  evaluator writes this as the squared difference of the normals encoded in [0, 1] (``(n+1)/2``,
  the background at 0.5), summed over the channels, averaged over the pixels and multiplied by 4;
  that equals the above. A pixel covered by one mesh only costs 1, opposite normals cost 4, and
  the background covered by neither costs 0, so the value depends on how much of the image the
  person fills: the framing here follows ICON's (orthographic cameras, the 1.8-unit person in a
  square of 2.048 units, ICON's ``ortho_ratio`` 0.4 at 512 pixels, rendered at ICON's 512²).
  The normals are ICON's too: each mesh's smooth, area-weighted vertex normals interpolated across
  its triangles (ICON colours every vertex by its normal), not face normals. Two details differ
  from ICON's rasteriser, both second-order: the interpolated normal is renormalised per pixel,
  and silhouette pixels are anti-aliased (2 × 2 sub-samples, box-filtered) where ICON takes the
  nearest face at each pixel centre. At 512² the 8 renders of a sample (a 25k-face scan and a
  27k-face prediction) take about 1.0 s on one CPU core with Mesa's llvmpipe, against 0.75 s at 256².

Frames: inputs are in the sample's camera frame (OpenCV: x right, y down, z forward), metres, with
the person upright, so the body's up axis is the camera's −y.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from munet.metrics.surface import chamfer_p2s

if TYPE_CHECKING:
    from munet.data.render import Renderer

ICON_HEIGHT = 1.8
"""Height of the ground-truth scan in ICON's normalised frame, units."""
ICON_NUM_SAMPLES = 1000
"""Surface samples per mesh of ICON's Chamfer and P2S."""
ICON_YAWS = (0.0, 90.0, 180.0, 270.0)
"""Yaws (degrees about the vertical axis through the pelvis) of the 4 normal renders: front, right,
back, left."""
ICON_VIEW_SPAN = 2.048
"""Side of the square each normal render sees at the pivot, in normalised units (ICON: 512 pixels
at an orthographic ratio of 0.4 on a 180-unit-tall scan, i.e. 204.8 / 100)."""
ICON_CAMERA_DISTANCE = 10.0
"""Distance of the (orthographic) normal-render cameras from the pivot, normalised units: it only
keeps the meshes in front of the camera."""
ICON_IMAGE_SIZE = 512
"""Side of each normal render, pixels (ICON's evaluator renders at 512²)."""


def icon_scale(gt_vertices: np.ndarray | torch.Tensor) -> float:
    """Factor taking the camera frame (metres) to ICON's normalised frame.

    Args:
        gt_vertices: ``(V, 3)`` ground-truth scan vertices, camera frame, metres, person upright.

    Returns:
        ``1.8 / h``, where ``h`` is the scan's extent along the body's up axis (the camera's −y).

    Raises:
        ValueError: a scan without vertical extent.
    """
    y = np.asarray(torch.as_tensor(gt_vertices).detach().cpu().double().numpy())[:, 1]
    extent = float(y.max() - y.min()) if len(y) else 0.0
    if not np.isfinite(extent) or extent <= 0.0:
        raise ValueError(f"the ground-truth scan has no vertical extent ({extent}); cannot normalise it")
    return ICON_HEIGHT / extent


def icon_surface_metrics(
    pred_vertices: torch.Tensor,
    pred_faces: torch.Tensor,
    gt_vertices: torch.Tensor,
    gt_faces: torch.Tensor,
    num_samples: int = ICON_NUM_SAMPLES,
    seed: int | None = 0,
) -> dict[str, float]:
    """ICON's Chamfer and P2S of one predicted mesh against its scan, in nominal cm.

    Both meshes are scaled by :func:`icon_scale` of the scan (about the camera origin: distances
    scale with it), then scored by :func:`munet.metrics.surface.chamfer_p2s`, whose ×100 turns
    normalised units into ICON's "cm".

    Args:
        pred_vertices: ``(V, 3)`` predicted mesh, camera frame, metres (already aligned).
        pred_faces: ``(F, 3)`` its triangles (integer).
        gt_vertices: ``(W, 3)`` ground-truth scan, camera frame, metres.
        gt_faces: ``(G, 3)`` its triangles (integer).
        num_samples: area-weighted samples per mesh (ICON: 1,000).
        seed: seeds the sampling (``None``: torch's global generator).

    Returns:
        ``{"chamfer_cm": float, "p2s_cm": float}``, ×100 in the 1.8-unit normalised frame.
    """
    scale = icon_scale(gt_vertices)
    scores = chamfer_p2s(
        [pred_vertices.float() * scale],
        [pred_faces.long()],
        [gt_vertices.float() * scale],
        [gt_faces.long()],
        num_samples=num_samples,
        seed=seed,
    )
    return {"chamfer_cm": float(scores["chamfer_cm"][0]), "p2s_cm": float(scores["p2s_cm"][0])}


def _yaw_about_y(degrees: float) -> np.ndarray:
    """Rotation (3, 3) by ``degrees`` about the camera's y axis (the body's vertical axis)."""
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def normal_renders(
    renderer: Renderer,
    vertices: np.ndarray,
    faces: np.ndarray,
    pivot: np.ndarray,
    centre_y: float,
    distance: float,
    yaws: Sequence[float] = ICON_YAWS,
    view_span: float = ICON_VIEW_SPAN,
) -> np.ndarray:
    """Camera-frame unit normals of a mesh seen from cameras turning about the vertical axis.

    The mesh is turned by each yaw about the vertical line through ``pivot`` and moved so that
    ``(pivot_x, centre_y, pivot_z)`` lies ``distance`` in front of an orthographic camera (ICON's)
    that sees a square of ``view_span`` units. Normals are the mesh's smooth vertex normals
    (:func:`munet.geometry.vertex_normals`), interpolated across each triangle, as ICON's renders.

    Args:
        renderer: the renderer (its ``image_size`` S is the render size).
        vertices: ``(V, 3)`` mesh, camera frame (y down), any unit.
        faces: ``(F, 3)`` triangles, counter-clockwise seen from outside.
        pivot: ``(3,)`` point on the vertical axis (the pelvis), same unit.
        centre_y: y of the image centre before turning, same unit.
        distance: camera distance from the pivot, same unit.
        yaws: view yaws, degrees.
        view_span: side of the square seen at the pivot's depth, same unit.

    Returns:
        ``(len(yaws), S, S, 3)`` float32 unit normals in each view's camera frame, zero where the
        mesh does not cover the pixel.
    """
    from munet.data.render import Lighting

    flat = Lighting(direction=np.array([0.0, 0.0, 1.0]), ambient=1.0, diffuse=0.0)
    size = renderer.image_size
    focal = size / view_span  # orthographic: pixels per unit at any depth
    K = np.array([[focal, 0.0, (size - 1) / 2], [0.0, focal, (size - 1) / 2], [0.0, 0.0, 1.0]])
    centre = np.array([pivot[0], centre_y, pivot[2]])
    colors = np.ones_like(vertices, dtype=np.float64)
    images = []
    for yaw in yaws:
        turned = (vertices - pivot) @ _yaw_about_y(yaw).T + pivot
        placed = turned - centre + np.array([0.0, 0.0, distance])
        images.append(renderer.render(placed, faces, colors, K, flat, orthographic=True).normal)
    return np.stack(images)


def normal_render_error(
    renderer: Renderer,
    pred_vertices: np.ndarray,
    pred_faces: np.ndarray,
    gt_vertices: np.ndarray,
    gt_faces: np.ndarray,
    pivot: np.ndarray,
    yaws: Sequence[float] = ICON_YAWS,
) -> float:
    """ICON's NC: the normal-render error of a predicted mesh against its scan (0 best, at most 4).

    Both meshes are scaled into the normalised frame (:func:`icon_scale` of the scan), rendered by
    :func:`normal_renders` from ``yaws`` about the vertical axis through ``pivot`` (10 units away,
    farther for a mesh that reaches beyond 5 units; ICON's framing, centred on the scan's vertical
    middle), and the value is the mean over every pixel of the ``len(yaws)`` images of
    ``|n_pred − n_gt|²`` (a zero normal where a mesh does not cover the pixel); see the module
    documentation.

    Args:
        renderer: the renderer (e.g. ``Renderer(ICON_IMAGE_SIZE)``).
        pred_vertices: ``(V, 3)`` predicted mesh, camera frame, metres (already aligned).
        pred_faces: ``(F, 3)`` its triangles.
        gt_vertices: ``(W, 3)`` ground-truth scan, camera frame, metres, upright.
        gt_faces: ``(G, 3)`` its triangles.
        pivot: ``(3,)`` the ground-truth pelvis, camera frame, metres.
        yaws: view yaws, degrees (front, right, back, left).

    Returns:
        The NC value (dimensionless, lower is better).
    """
    scale = icon_scale(gt_vertices)
    pred = np.asarray(pred_vertices, np.float64) * scale
    gt = np.asarray(gt_vertices, np.float64) * scale
    centre = np.asarray(pivot, np.float64) * scale
    reach = max(np.linalg.norm(pred - centre, axis=1).max(), np.linalg.norm(gt - centre, axis=1).max())
    distance = max(ICON_CAMERA_DISTANCE, 2.0 * float(reach))
    centre_y = float(gt[:, 1].max() + gt[:, 1].min()) / 2
    args = (centre, centre_y, distance, yaws)
    pred_normals = normal_renders(renderer, pred, np.asarray(pred_faces), *args)
    gt_normals = normal_renders(renderer, gt, np.asarray(gt_faces), *args)
    return float(((pred_normals - gt_normals) ** 2).sum(axis=-1).mean())
