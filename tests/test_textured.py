"""The textured-mesh renderer: texels where the UVs put them, the mask of the projected silhouette,
camera-frame normals, the same pixel convention as :mod:`munet.data.render`."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from munet.data.render import Lighting, Renderer
from munet.data.textured import TexturedRenderer
from munet.geometry import project

SIZE = 64
K = np.array([[24.0, 0.0, 31.5], [0.0, 24.0, 31.5], [0.0, 0.0, 1.0]])
# A 2 × 2 m quad 2 m in front of the camera: it covers pixel columns/rows 20 … 43 exactly.
QUAD = np.array([[-1.0, -1.0, 2.0], [1.0, -1.0, 2.0], [1.0, 1.0, 2.0], [-1.0, 1.0, 2.0]])  # TL TR BR BL
QUAD_FACES = np.array([[0, 3, 2], [0, 2, 1]])  # counter-clockwise seen from the camera: normal −z
QUAD_UV = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])  # OBJ: v up, so TL is (0, 1)


def block_texture(blocks: int = 4, texels: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A (blocks·texels)² RGB texture of ``blocks × blocks`` distinct colours; returns it and the
    colours (blocks, blocks, 3), row 0 at the top of the image."""
    rng = np.random.default_rng(0)
    colours = rng.integers(20, 236, size=(blocks, blocks, 3), dtype=np.uint8)
    return np.repeat(np.repeat(colours, texels, axis=0), texels, axis=1), colours


@pytest.fixture(scope="module")
def renderer():
    with TexturedRenderer(SIZE, supersample=2) as made:
        yield made


def test_texels_mask_and_normals(renderer):
    texture, colours = block_texture()
    frame = renderer.render(QUAD, QUAD_FACES, QUAD_UV[QUAD_FACES], texture, K)
    expected_mask = np.zeros((SIZE, SIZE), bool)
    expected_mask[20:44, 20:44] = True
    np.testing.assert_array_equal(frame.mask, expected_mask)
    # Each 6-pixel block shows its texture block: the texture's top row at the top of the image.
    for row in range(4):
        for col in range(4):
            pixel = frame.image[20 + 6 * row + 3, 20 + 6 * col + 3].astype(int)
            np.testing.assert_allclose(pixel, colours[row, col], atol=2)
    normals = frame.normal[frame.mask]
    np.testing.assert_allclose(normals, np.tile([0.0, 0.0, -1.0], (len(normals), 1)), atol=1e-5)
    np.testing.assert_allclose(frame.depth[frame.mask], 2.0, atol=1e-4)
    assert (frame.image[~frame.mask] == 0).all() and (frame.normal[~frame.mask] == 0).all()


def test_silhouette_matches_the_coloured_renderer(renderer):
    """A tilted, off-centre mesh: same mask as :class:`munet.data.render.Renderer` (same camera
    convention), its projected vertices on the mask, and shading from the optional light."""
    rng = np.random.default_rng(3)
    angle = 0.5
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    vertices = (QUAD * [0.6, 0.9, 0.0]) @ rotation.T + [0.3, -0.2, 2.5]
    vertices = np.concatenate([vertices, [[0.1, 0.6, 2.2]]])
    faces = np.concatenate([QUAD_FACES, [[3, 4, 2]]])
    uvs = rng.random((len(faces), 3, 2))
    texture = np.full((8, 8, 3), 200, np.uint8)
    frame = renderer.render(vertices, faces, uvs, texture, K)
    with Renderer(SIZE, supersample=2) as plain:
        reference = plain.render(vertices, faces, np.ones((5, 3)), K, Lighting(np.array([0.0, 0.0, 1.0]), 1.0, 0.0))
    assert abs(int(frame.mask.sum()) - int(reference.mask.sum())) <= 2
    assert (frame.mask != reference.mask).sum() <= 2
    pixels = np.rint(project(vertices, K)).astype(int)
    inside = (pixels >= 0).all(1) & (pixels < SIZE).all(1)
    near = [frame.mask[max(v - 1, 0) : v + 2, max(u - 1, 0) : u + 2].any() for u, v in pixels[inside]]
    assert all(near)
    interior = cv2.erode(frame.mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # no edge blend
    np.testing.assert_allclose(frame.image[interior], 200, atol=1)
    lit = renderer.render(vertices, faces, uvs, texture, K, Lighting(np.array([0.0, 0.0, 1.0]), 0.0, 0.5))
    assert lit.image[lit.mask].mean() < 110


def test_bad_input(renderer):
    texture, _ = block_texture()
    with pytest.raises(ValueError, match="per face corner"):
        renderer.render(QUAD, QUAD_FACES, QUAD_UV, texture, K)
    with pytest.raises(ValueError, match="NaN"):
        renderer.render(QUAD * [1, 1, np.nan], QUAD_FACES, QUAD_UV[QUAD_FACES], texture, K)
    with pytest.raises(ValueError, match="uint8"):
        renderer.render(QUAD, QUAD_FACES, QUAD_UV[QUAD_FACES], texture.astype(np.float32), K)
