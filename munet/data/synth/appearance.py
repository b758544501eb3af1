"""Procedural appearance: per-vertex colours of the clothed surface.

Every region label gets a :class:`Material`: skin tones from a light-to-dark palette, natural
hair colours, and garments in random colours with a pattern (solid, stripes, checks, dots or
noise) evaluated at the vertex positions (metres), so patterns are 3D and need no UV map. A low
amplitude noise shades every material so that no region is perfectly flat.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from munet.data.synth.garments import ClothLabel, Garment
from munet.data.synth.noise import wave_noise

SKIN_TONES = np.array(
    [
        [0.96, 0.80, 0.69],
        [0.92, 0.74, 0.60],
        [0.87, 0.66, 0.52],
        [0.78, 0.57, 0.43],
        [0.65, 0.45, 0.32],
        [0.52, 0.35, 0.24],
        [0.40, 0.26, 0.18],
        [0.30, 0.20, 0.14],
    ]
)
"""sRGB skin tones, light to dark."""

HAIR_COLOURS = np.array(
    [
        [0.05, 0.04, 0.035],
        [0.17, 0.11, 0.07],
        [0.33, 0.21, 0.12],
        [0.45, 0.20, 0.10],
        [0.75, 0.60, 0.38],
        [0.60, 0.60, 0.58],
    ]
)
"""sRGB hair colours: black, dark brown, brown, auburn, blond, grey."""

PATTERNS: dict[str, float] = {
    "solid": 0.45,
    "stripes": 0.2,
    "checks": 0.12,
    "dots": 0.1,
    "noise": 0.13,
}
"""Garment patterns and their probabilities."""


@dataclass(frozen=True)
class Material:
    """Colours and pattern of one region.

    Attributes:
        base: (3,) sRGB in [0, 1]. accent: (3,) second colour of the pattern.
        pattern: one of :data:`PATTERNS`. scale: pattern period, metres.
        direction: (3,) unit vector across stripes (and one axis of the checks).
        shading: amplitude of the multiplicative shading noise. seed: seed of the noise fields.
    """

    base: np.ndarray
    accent: np.ndarray
    pattern: str = "solid"
    scale: float = 0.05
    direction: np.ndarray | None = None
    shading: float = 0.05
    seed: int = 0

    def colors(self, points: np.ndarray) -> np.ndarray:
        """Colours (N, 3) float32 in [0, 1] of surface points (N, 3), metres."""
        rng = np.random.default_rng(self.seed)
        direction = self.direction if self.direction is not None else np.array([0.0, 0.0, 1.0])
        phase = points @ direction / self.scale
        if self.pattern == "stripes":
            mix = (np.mod(phase, 1.0) < 0.5).astype(np.float32)
        elif self.pattern == "checks":
            other = np.cross(direction, [0.3, 0.5, 0.8])
            other /= np.linalg.norm(other)
            mix = ((np.floor(phase) + np.floor(points @ other / self.scale)) % 2).astype(np.float32)
        elif self.pattern == "dots":
            cell = np.mod(points / self.scale, 1.0) - 0.5
            mix = (np.linalg.norm(cell, axis=1) < 0.3).astype(np.float32)
        elif self.pattern == "noise":
            mix = np.clip(wave_noise(rng, points, 2 * self.scale) * 0.8 + 0.5, 0, 1)
        else:
            mix = np.zeros(len(points), dtype=np.float32)
        colour = self.base * (1 - mix[:, None]) + self.accent * mix[:, None]
        shade = 1 + self.shading * wave_noise(rng, points, 0.15)
        return np.clip(colour * shade[:, None], 0, 1).astype(np.float32)


def _random_colour(rng: np.random.Generator, dark: bool = False) -> np.ndarray:
    """A garment colour: any hue, often muted; ``dark`` for shoes."""
    saturation = rng.beta(1.2, 2.0)
    value = rng.uniform(0.05, 0.35) if dark else rng.uniform(0.15, 0.95)
    return np.array(colorsys.hsv_to_rgb(rng.random(), saturation, value))


def _unit(rng: np.random.Generator) -> np.ndarray:
    vector = rng.normal(size=3)
    return vector / np.linalg.norm(vector)


def sample_materials(rng: np.random.Generator, outfit: list[Garment]) -> dict[ClothLabel, Material]:
    """A material for the skin, the hair and every garment label of the outfit."""
    tone = np.clip(SKIN_TONES[rng.integers(len(SKIN_TONES))] + rng.uniform(-0.03, 0.03, 3), 0, 1)
    materials = {ClothLabel.SKIN: Material(tone, tone, shading=0.04, seed=int(rng.integers(2**31)))}
    hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.85, 1.15)
    materials[ClothLabel.HAIR] = Material(
        np.clip(hair, 0, 1),
        np.clip(hair * 1.4 + 0.03, 0, 1),
        pattern="noise",
        scale=0.015,
        shading=0.1,
        seed=int(rng.integers(2**31)),
    )
    names = list(PATTERNS)
    weights = np.array(list(PATTERNS.values()))
    for garment in outfit:
        if garment.label == ClothLabel.HAIR:
            continue
        shoes = garment.label == ClothLabel.SHOES
        materials[garment.label] = Material(
            base=_random_colour(rng, dark=shoes and rng.random() < 0.7),
            accent=_random_colour(rng),
            pattern="solid" if shoes else names[rng.choice(len(names), p=weights / weights.sum())],
            scale=float(rng.uniform(0.03, 0.12)),
            direction=_unit(rng),
            shading=float(rng.uniform(0.03, 0.12)),
            seed=int(rng.integers(2**31)),
        )
    return materials


def vertex_colors(materials: dict[ClothLabel, Material], vertices: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-vertex colours (N, 3) float32 in [0, 1] from each vertex's label and position.

    Raises:
        KeyError: a label has no material.
    """
    colors = np.zeros((len(vertices), 3), dtype=np.float32)
    for value in np.unique(labels):
        label = ClothLabel(int(value))
        if label not in materials:
            known = [m.name for m in materials]
            raise KeyError(f"no material for label {label.name}; materials: {known}")
        mask = labels == value
        colors[mask] = materials[label].colors(vertices[mask])
    return colors
