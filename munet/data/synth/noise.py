"""Smooth procedural 3D noise (a sum of random plane waves), for wrinkles and fabric patterns."""

from __future__ import annotations

import numpy as np


def wave_noise(rng: np.random.Generator, points: np.ndarray, wavelength: float, waves: int = 8) -> np.ndarray:
    """Smooth random field at ``points`` (N, 3), zero mean and unit variance over space.

    A sum of ``waves`` cosines with random directions, phases and wavelengths within 30% of
    ``wavelength`` (metres); the same ``rng`` state gives the same field.

    Returns:
        (N,) float32.
    """
    if wavelength <= 0 or waves < 1:
        raise ValueError(f"wave_noise needs wavelength > 0 and waves >= 1, got {wavelength} and {waves}")
    directions = rng.normal(size=(waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    frequencies = 2 * np.pi / (wavelength * rng.uniform(0.7, 1.3, size=waves))
    phases = rng.uniform(0, 2 * np.pi, size=waves)
    arguments = points @ (directions * frequencies[:, None]).T + phases
    return (np.cos(arguments).sum(axis=1) * np.sqrt(2.0 / waves)).astype(np.float32)
