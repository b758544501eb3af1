"""Random scene conditions of a rendered view: lights and backgrounds."""

from __future__ import annotations

import numpy as np

from munet.data.scene import sample_background, sample_lighting


def test_background_is_varied_and_deterministic():
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    first = [sample_background(rng_a, 32) for _ in range(6)]
    again = [sample_background(rng_b, 32) for _ in range(6)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
        assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    assert len({a.tobytes() for a in first}) == 6


def test_lighting_comes_from_the_camera_side_and_is_deterministic():
    lights = [sample_lighting(np.random.default_rng(seed)) for seed in range(20)]
    for light in lights:
        np.testing.assert_allclose(np.linalg.norm(light.direction), 1.0)
        assert light.direction[2] > 0  # travels into the scene, away from the camera
        assert 0.25 <= light.ambient <= 0.5 and 0.5 <= light.diffuse <= 0.8
    again = sample_lighting(np.random.default_rng(0))
    np.testing.assert_array_equal(again.direction, lights[0].direction)
    assert (again.ambient, again.diffuse) == (lights[0].ambient, lights[0].diffuse)
