"""Random scene conditions of one rendered view: the light on the person and the background behind.

Both are drawn from a caller's generator, so a view's scene depends only on that generator's state
(:mod:`munet.data.generate` seeds one per view). The light is a :class:`~munet.data.render.Lighting`
in the camera frame; the background is an image the renderer composites the person over.
"""

from __future__ import annotations

import cv2
import numpy as np

from munet.data.render import Lighting


def sample_lighting(rng: np.random.Generator) -> Lighting:
    """A random light from the camera's side of the scene (mostly from above)."""
    direction = np.array([rng.uniform(-1.0, 1.0), rng.uniform(-0.3, 1.0), rng.uniform(0.6, 1.5)])
    return Lighting(
        direction=direction / np.linalg.norm(direction),
        ambient=float(rng.uniform(0.25, 0.5)),
        diffuse=float(rng.uniform(0.5, 0.8)),
    )


def _random_colors(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.uniform(0.0, 1.0, size=(count, 3))


def sample_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random procedural background (S, S, 3) uint8.

    One of: a linear or radial colour gradient, multi-octave value noise, soft stripes or a
    rotated checkerboard, plus a little per-pixel grain.
    """
    coords = (np.arange(size) + 0.5) / size
    x, y = np.meshgrid(coords, coords)
    angle = rng.uniform(0.0, np.pi)
    along = np.cos(angle) * x + np.sin(angle) * y
    across = -np.sin(angle) * x + np.cos(angle) * y
    first, second = _random_colors(rng, 2)
    kind = rng.integers(5)
    if kind == 0:
        weight = (along - along.min()) / (along.max() - along.min())
    elif kind == 1:
        centre = rng.uniform(0.0, 1.0, size=2)
        radius = np.hypot(x - centre[0], y - centre[1])
        weight = radius / radius.max()
    elif kind == 2:
        weight = np.zeros_like(x)
        for octave in range(3):
            cells = int(rng.integers(2, 6)) * 2**octave
            grid = rng.uniform(0.0, 1.0, size=(cells, cells)).astype(np.float32)
            weight += cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC) / 2**octave
        weight = (weight - weight.min()) / max(float(np.ptp(weight)), 1e-6)
    elif kind == 3:
        frequency = rng.uniform(2.0, 12.0)
        weight = 0.5 + 0.5 * np.sin(2 * np.pi * frequency * along)
    else:
        frequency = rng.uniform(2.0, 10.0)
        weight = (np.floor(along * frequency) + np.floor(across * frequency)) % 2
    image = first * (1 - weight[..., None]) + second * weight[..., None]
    image += rng.normal(0.0, rng.uniform(0.0, 0.03), size=image.shape)
    return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
