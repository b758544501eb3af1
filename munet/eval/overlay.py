"""Meshes rendered over images, for a person to look at."""

from __future__ import annotations

import cv2
import numpy as np

from munet.data.render import Lighting, Renderer

BODY_COLOR = (0.35, 0.55, 1.0)
CLOTH_COLOR = (1.0, 0.6, 0.25)
TRUTH_COLOR = (0.35, 0.85, 0.45)
_FRONT_LIGHT = Lighting(
    direction=np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0]), ambient=0.35, diffuse=0.7
)


def overlay_mesh(
    renderer: Renderer,
    image: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    color: tuple[float, float, float],
    alpha: float = 0.7,
    orthographic: bool = False,
) -> np.ndarray:
    """``image`` (S, S, 3) uint8 with the mesh (camera frame, metres) blended over it, seen through
    ``K`` (an orthographic camera's when ``orthographic``, see :func:`munet.geometry.project`).

    A mesh that cannot be drawn (not finite, or behind the camera) leaves the image unchanged
    with a red ``not drawable`` label, so that one bad prediction never stops a report.
    """
    try:
        picture, mask = renderer.render_picture(
            vertices, faces, np.tile(color, (len(vertices), 1)), K, _FRONT_LIGHT, image, orthographic
        )
    except ValueError:
        shown = image.copy()
        cv2.putText(shown, "not drawable", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 0, 0), 1)
        return shown
    shown = image.copy()  # blended where the mesh is only: its pixels are a fraction of the image
    if alpha == 1.0:
        np.copyto(shown, picture, where=mask[..., None])
    else:
        blended = alpha * picture[mask].astype(np.float32) + (1 - alpha) * image[mask].astype(np.float32)
        shown[mask] = blended.astype(np.uint8)
    return shown


def label(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of ``image`` with ``text`` written in its top-left corner."""
    shown = image.copy()
    cv2.putText(shown, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3)
    cv2.putText(shown, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
    return shown
