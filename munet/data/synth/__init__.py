"""Procedural clothed humans: posed Anny bodies, garments, one watertight clothed surface, colours.

Modules: :mod:`~munet.data.synth.poses` (phenotypes, poses, self-intersection test),
:mod:`~munet.data.synth.regions` (per-vertex body regions), :mod:`~munet.data.synth.garments`
and :mod:`~munet.data.synth.primitives` (outfits), :mod:`~munet.data.synth.surface` (implicit
surface extraction), :mod:`~munet.data.synth.appearance` (colours), :mod:`~munet.data.synth.human`
(everything together: :func:`make_clothed_human`).
"""

from munet.data.synth.garments import GARMENT_TYPES, ClothLabel
from munet.data.synth.human import (
    ClothedHuman,
    ClothedHumanSampler,
    SynthSettings,
    make_clothed_human,
)

__all__ = [
    "GARMENT_TYPES",
    "ClothLabel",
    "ClothedHuman",
    "ClothedHumanSampler",
    "SynthSettings",
    "make_clothed_human",
]
