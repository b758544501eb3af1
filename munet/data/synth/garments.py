"""Procedural garments: types, random outfits, per-vertex layers and loose volumes.

A garment acts in two ways. On the body vertices it *covers* (a region rule on
:class:`~munet.data.synth.regions.BodyRegions`, e.g. "torso above the hem and arms up to the
sleeve"), it sets how far the clothed surface lies from the skin: skin offset + ease (looseness)
+ thickness + wrinkle noise, stacked over the inner layers. Skirts, dresses, coats and long hair
also add a volume (:class:`~munet.data.synth.primitives.SweptEllipse`) that bridges the legs or
hangs from the head. :mod:`munet.data.synth.surface` turns both into one watertight mesh.

Lengths are body coordinates, so garments fit any body: ``sleeve`` is an arm coordinate
(0 shoulder, 0.5 elbow, 1 wrist), ``length`` a leg coordinate (0 hip, 0.5 knee, 1 ankle),
``hem`` and ``waist`` torso heights (0 hip joints, 1 shoulder joints).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from munet.data.synth.noise import wave_noise
from munet.data.synth.primitives import SweptEllipse, head_frame, lower_body_sweep
from munet.data.synth.regions import BodyPart, BodyRegions


class ClothLabel(IntEnum):
    """Region label of a clothed-surface face."""

    SKIN = 0
    HAIR = 1
    TOP = 2
    OUTER = 3
    BOTTOM = 4
    DRESS = 5
    SHOES = 6


GARMENT_LABELS: dict[str, ClothLabel] = {
    "tshirt": ClothLabel.TOP,
    "long_sleeve": ClothLabel.TOP,
    "jacket": ClothLabel.OUTER,
    "coat": ClothLabel.OUTER,
    "trousers": ClothLabel.BOTTOM,
    "shorts": ClothLabel.BOTTOM,
    "skirt": ClothLabel.BOTTOM,
    "dress": ClothLabel.DRESS,
    "short_hair": ClothLabel.HAIR,
    "long_hair": ClothLabel.HAIR,
    "shoes": ClothLabel.SHOES,
}
"""Every garment type and its label."""

GARMENT_TYPES: tuple[str, ...] = tuple(GARMENT_LABELS)

_LAYER = {
    ClothLabel.SHOES: 0,
    ClothLabel.BOTTOM: 1,
    ClothLabel.TOP: 2,
    ClothLabel.DRESS: 2,
    ClothLabel.OUTER: 3,
    ClothLabel.HAIR: 4,
}
"""Stacking order, inside out: trousers over shoes, tops over trousers, jackets over both."""

_SLOTS: tuple[tuple[str, ...], ...] = (
    ("tshirt", "long_sleeve"),
    ("trousers", "shorts", "skirt"),
    ("jacket", "coat"),
    ("short_hair", "long_hair"),
    ("shoes",),
)

DEFAULT_GARMENT_WEIGHTS: dict[str, float] = {
    "dress": 0.15,
    "tshirt": 0.5,
    "long_sleeve": 0.42,
    "trousers": 0.55,
    "shorts": 0.25,
    "skirt": 0.2,
    "jacket": 0.2,
    "coat": 0.1,
    "short_hair": 0.5,
    "long_hair": 0.35,
    "shoes": 0.85,
}
"""Probabilities of the garment types. An outfit is a dress with probability ``dress``, else a
top and a bottom; then an outer layer, hair and shoes. Within a slot (tops; bottoms; outer
layers; hair; shoes) the probabilities sum to at most 1, the rest meaning "none"."""


@dataclass(frozen=True)
class Garment:
    """One garment and its parameters (metres or body coordinates; unused ones stay 0).

    Attributes:
        kind: one of :data:`GARMENT_TYPES`.
        ease: looseness, extra distance from the body.
        thickness: cloth (or hair) thickness, added over the inner layers.
        sleeve: arm coordinate where sleeves end (tops, dress, outer layers).
        hem: torso height of the lower edge (tops, outer layers); for shoes, the collar height
            above the ankle (leg coordinate); for hair, a shift of the hairline (head radii).
        waist: torso height of the upper edge (bottoms, dress skirt).
        length: leg coordinate of the lower edge (bottoms, dress, coat); hair length in metres.
        flare: extra half-width at the lower edge (skirts, wide trousers, coats).
        wrinkle: amplitude of the wrinkle noise; wavelength: its wavelength.
        seed: seed of the wrinkle (or hair strand) pattern.
    """

    kind: str
    ease: float = 0.0
    thickness: float = 0.005
    sleeve: float = 0.0
    hem: float = 0.0
    waist: float = 0.0
    length: float = 0.0
    flare: float = 0.0
    wrinkle: float = 0.0
    wavelength: float = 0.08
    seed: int = 0

    @property
    def label(self) -> ClothLabel:
        """The face label of this garment."""
        return GARMENT_LABELS[self.kind]


_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "tshirt": dict(ease=(0, 0.025), thickness=(0.003, 0.006), sleeve=(0.12, 0.4), hem=(-0.3, -0.05)),
    "long_sleeve": dict(ease=(0, 0.03), thickness=(0.003, 0.008), sleeve=(0.85, 1.0), hem=(-0.3, -0.05)),
    "jacket": dict(ease=(0.01, 0.035), thickness=(0.008, 0.015), sleeve=(0.9, 1.0), hem=(-0.45, -0.2)),
    "coat": dict(
        ease=(0.015, 0.04),
        thickness=(0.01, 0.02),
        sleeve=(0.92, 1.02),
        hem=(-0.6, -0.6),
        length=(0.35, 0.75),
        flare=(0, 0.06),
    ),
    "trousers": dict(
        ease=(0, 0.03),
        thickness=(0.004, 0.008),
        waist=(0.2, 0.45),
        length=(0.9, 1.0),
        flare=(0, 0.03),
    ),
    "shorts": dict(ease=(0, 0.03), thickness=(0.004, 0.008), waist=(0.2, 0.45), length=(0.15, 0.4)),
    "skirt": dict(
        ease=(0.005, 0.02),
        thickness=(0.003, 0.006),
        waist=(0.25, 0.45),
        length=(0.2, 0.9),
        flare=(0, 0.08),
    ),
    "dress": dict(
        ease=(0, 0.02),
        thickness=(0.003, 0.006),
        sleeve=(0, 0.45),
        waist=(0.3, 0.5),
        length=(0.25, 0.95),
        flare=(0, 0.08),
    ),
    "short_hair": dict(thickness=(0.005, 0.03), hem=(-0.1, 0.1)),
    "long_hair": dict(thickness=(0.01, 0.03), hem=(-0.1, 0.1), length=(0.12, 0.4)),
    "shoes": dict(ease=(0.003, 0.012), thickness=(0.008, 0.02), hem=(0.02, 0.15)),
}
"""Uniform ranges of each type's parameters."""


def sample_garment(rng: np.random.Generator, kind: str) -> Garment:
    """A garment of type ``kind`` with random parameters in its ranges.

    Raises:
        KeyError: unknown type (the message lists them).
    """
    if kind not in _RANGES:
        raise KeyError(f"unknown garment type {kind!r}; choose from {list(GARMENT_TYPES)}")
    values = {name: float(rng.uniform(*bounds)) for name, bounds in _RANGES[kind].items()}
    wrinkle = rng.uniform(0.001, 0.003) + 0.08 * values.get("ease", 0.0)
    return Garment(
        kind,
        wrinkle=float(wrinkle),
        wavelength=float(rng.uniform(0.06, 0.15)),
        seed=int(rng.integers(2**31)),
        **values,
    )


def sample_outfit(rng: np.random.Generator, weights: Mapping[str, float] | None = None) -> list[Garment]:
    """A random outfit, inner layers first (see :data:`DEFAULT_GARMENT_WEIGHTS`).

    Raises:
        ValueError: unknown type names, or probabilities of a slot that sum above 1.
    """
    weights = {**DEFAULT_GARMENT_WEIGHTS, **(weights or {})}
    unknown = sorted(set(weights) - set(GARMENT_TYPES))
    if unknown:
        raise ValueError(f"unknown garment types {unknown}; choose from {list(GARMENT_TYPES)}")
    kinds = []
    dress = rng.random() < weights["dress"]
    for slot in _SLOTS:
        if dress and slot in (_SLOTS[0], _SLOTS[1]):
            continue
        probabilities = np.array([weights[k] for k in slot])
        if probabilities.min() < 0 or probabilities.sum() > 1 + 1e-9:
            raise ValueError(f"probabilities of {slot} must be >= 0 and sum to <= 1")
        pick = rng.random()
        chosen = np.searchsorted(np.cumsum(probabilities), pick, side="right")
        if chosen < len(slot):
            kinds.append(slot[chosen])
    if dress:
        kinds.append("dress")
    return make_outfit(rng, kinds)


def make_outfit(rng: np.random.Generator, kinds: list[str] | tuple[str, ...]) -> list[Garment]:
    """An outfit of the given garment types (random parameters), sorted inner layers first."""
    garments = [sample_garment(rng, kind) for kind in kinds]
    return sorted(garments, key=lambda g: _LAYER[g.label])


def _covers(garment: Garment, regions: BodyRegions) -> np.ndarray:
    """(V,) bool: the body vertices a garment covers."""
    part, limb, height = regions.part, regions.limb, regions.height
    arms = np.isin(part, (BodyPart.UPPER_ARM, BodyPart.LOWER_ARM, BodyPart.HAND))
    legs = np.isin(part, (BodyPart.UPPER_LEG, BodyPart.LOWER_LEG, BodyPart.FOOT))
    torso = part == BodyPart.TORSO
    kind = garment.kind
    if kind in ("tshirt", "long_sleeve", "jacket", "coat"):
        upper = (torso | (part == BodyPart.UPPER_LEG)) & (height >= garment.hem)
        return upper | (arms & (limb <= garment.sleeve))
    if kind in ("trousers", "shorts", "skirt"):
        return (torso & (height <= garment.waist)) | (legs & (limb <= garment.length))
    if kind == "dress":
        return torso | (arms & (limb <= garment.sleeve)) | (legs & (limb <= garment.length))
    if kind == "shoes":
        return (part == BodyPart.FOOT) | ((part == BodyPart.LOWER_LEG) & (limb >= 1 - garment.hem))
    return _scalp(garment, regions)


def _scalp(garment: Garment, regions: BodyRegions) -> np.ndarray:
    """Head vertices above a hairline that runs from the forehead down to the nape."""
    centre, radius = head_frame(regions)
    q = (regions.vertices - centre) / radius
    hairline = -0.05 - 0.75 * q[:, 1] + garment.hem
    return (regions.part == BodyPart.HEAD) & (q[:, 2] > hairline)


def vertex_layers(outfit: list[Garment], regions: BodyRegions, skin_offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Distance of the clothed surface from each body vertex, and the label seen there.

    Garments are stacked in order (pass them inner first, as :func:`make_outfit` returns them):
    a covered vertex moves out to ``skin_offset + ease + thickness + wrinkle * noise`` of that
    garment, and at least ``thickness`` beyond the layers under it.

    Returns:
        offsets (V,) float32 metres, >= ``skin_offset``; labels (V,) uint8 :class:`ClothLabel`.
    """
    offsets = np.full(len(regions.part), skin_offset, dtype=np.float32)
    labels = np.full(len(regions.part), ClothLabel.SKIN, dtype=np.uint8)
    for garment in outfit:
        covered = _covers(garment, regions)
        noise = wave_noise(np.random.default_rng(garment.seed), regions.vertices[covered], garment.wavelength)
        ease = np.full(len(noise), garment.ease)
        if garment.kind == "trousers":  # wide legs: the ease grows from the knee down
            ease += garment.flare * np.maximum(regions.limb[covered] - 0.5, 0)
        target = skin_offset + ease + garment.thickness + garment.wrinkle * noise
        target = np.maximum(target, skin_offset + 0.5 * garment.thickness)
        offsets[covered] = np.maximum(offsets[covered] + garment.thickness, target)
        labels[covered] = garment.label
    return offsets, labels


@dataclass(frozen=True)
class Volume:
    """A loose garment volume and the label of the surface it makes."""

    shape: SweptEllipse
    label: ClothLabel


def garment_volumes(
    outfit: list[Garment],
    regions: BodyRegions,
    vertices: np.ndarray,
    heads: dict[str, np.ndarray],
    head_transform: np.ndarray,
) -> list[Volume]:
    """The loose volumes of an outfit on a posed body.

    Args:
        outfit: the garments; regions: the body's regions; vertices: (V, 3) posed vertices;
        heads: posed bone heads by label; head_transform: (4, 4) map of the head from the
        reference pose to this one.
    """
    volumes = []
    for garment in outfit:
        rng = np.random.default_rng(garment.seed + 1)
        if garment.kind in ("skirt", "dress", "coat"):
            top = None if garment.kind == "coat" else garment.waist
            centres, semi, lateral = lower_body_sweep(
                regions, vertices, heads, top, garment.length, garment.ease, garment.flare
            )
            semi = semi + garment.thickness
            ripples, depth = int(rng.integers(6, 16)), float(rng.uniform(0.0, 0.08))
        elif garment.kind == "long_hair":
            centres, semi, lateral = _hair_stations(garment, regions, head_transform)
            ripples, depth = int(rng.integers(15, 40)), 0.05
        else:
            continue
        phase = float(rng.uniform(0, 2 * np.pi))
        shape = SweptEllipse(centres, semi, lateral, ripples, depth, phase)
        volumes.append(Volume(shape, garment.label))
    return volumes


def _hair_stations(
    garment: Garment, regions: BodyRegions, head_transform: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Long hair: from the back of the posed head, hanging ``garment.length`` metres down (-Z)
    behind the neck (ellipse semi-axes in head radii)."""
    centre, radius = head_frame(regions)
    rotation, translation = head_transform[:3, :3], head_transform[:3, 3]
    top = rotation @ (centre + radius * np.array([0.0, 0.35, 0.15])) + translation
    back = rotation @ np.array([0.0, 1.0, 0.0])
    back[2] = 0.0
    back *= 0.45 * radius / max(np.linalg.norm(back), 1e-6)
    bottom = top + back + np.array([0.0, 0.0, -garment.length])
    semi = radius * np.array([[1.1, 0.6], [1.2, 0.35]]) + garment.thickness
    return np.stack([top, bottom]), semi, rotation[:, 0]
