"""A random clothed human: Anny body, outfit, clothed surface and colours, from one ``Generator``.

>>> human = make_clothed_human(np.random.default_rng(0), body)   # body: AnnyBody
>>> human.cloth_vertices.shape, human.garments                     # (Vc, 3), ['shoes', ...]

To make many, build a :class:`ClothedHumanSampler` once and call it per person (it keeps the
phenotype tables and the pose frames).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from munet.body.anny_backend import AnnyBody
from munet.data.synth.appearance import sample_materials, vertex_colors
from munet.data.synth.garments import (
    DEFAULT_GARMENT_WEIGHTS,
    garment_volumes,
    make_outfit,
    sample_outfit,
    vertex_layers,
)
from munet.data.synth.poses import DEFAULT_FAMILY_WEIGHTS, BodySampler
from munet.data.synth.surface import SurfaceError, extract_surface, timed


@dataclass
class SynthSettings:
    """Knobs of the synthetic human generator (defaults are the shipped behaviour).

    Attributes:
        voxel: grid spacing of the clothed surface, metres. 2 cm keeps the geometry near 0.2 s
            per person on one core; 1.5 cm is finer and about twice as slow.
        skin_offset: distance of the surface from bare skin, metres; must exceed half a voxel
            (see :mod:`munet.data.synth.surface`).
        blend: smooth-union radius between loose volumes and the body layer, metres.
        garment_weights: probabilities of the garment types (see
            :data:`~munet.data.synth.garments.DEFAULT_GARMENT_WEIGHTS`).
        garments: if set, every outfit is exactly these garment types (parameters still random).
        family_weights: relative frequency of the pose families (see
            :data:`~munet.data.synth.poses.DEFAULT_FAMILY_WEIGHTS`).
        family: if set, every pose is from this family.
        age_range: morphological ages, years.
        max_pose_retries: self-intersecting poses redrawn before falling back to the A-pose.
        collision_tolerance: capsule overlap allowed by the self-intersection test, metres.
        max_outfit_retries: outfits redrawn when a surface is not a clean 2-manifold.
    """

    voxel: float = 0.02
    skin_offset: float = 0.012
    blend: float = 0.02
    garment_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_GARMENT_WEIGHTS))
    garments: tuple[str, ...] | None = None
    family_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FAMILY_WEIGHTS))
    family: str | None = None
    age_range: tuple[float, float] = (12.0, 80.0)
    max_pose_retries: int = 20
    collision_tolerance: float = 0.01
    max_outfit_retries: int = 3


@dataclass
class ClothedHuman:
    """One synthetic person in Anny's frame (Z up, front -Y, metres).

    Attributes:
        pose: (312,) float32 Anny axis-angle pose. shape: (6,) float32 phenotypes.
        body_vertices: (13348, 3) float32. body_joints: (17, 3) float32 COCO-17.
        cloth_vertices: (Vc, 3) float32. cloth_faces: (Fc, 3) int32, outward-facing,
            watertight 2-manifold. cloth_face_labels: (Fc,) uint8
            :class:`~munet.data.synth.garments.ClothLabel`.
        cloth_vertex_colors: (Vc, 3) float32 sRGB in [0, 1].
        garments: the garment types of the outfit, inner layers first.
        pose_family: the pose family the pose was drawn from.
        timings: wall-clock seconds per stage: ``pose`` (phenotypes, pose draws with their
            Anny passes and collision tests), ``body`` (joints, bone maps), ``sdf`` (distance
            field), ``marching_cubes``, ``cleanup`` (component, orientation, manifold check,
            labels) and ``colors``.
    """

    pose: np.ndarray
    shape: np.ndarray
    body_vertices: np.ndarray
    body_joints: np.ndarray
    cloth_vertices: np.ndarray
    cloth_faces: np.ndarray
    cloth_face_labels: np.ndarray
    cloth_vertex_colors: np.ndarray
    garments: list[str]
    pose_family: str = ""
    timings: dict[str, float] = field(default_factory=dict)


class ClothedHumanSampler:
    """Makes clothed humans with one body model (build once, then call once per person)."""

    def __init__(self, body: AnnyBody, settings: SynthSettings | None = None):
        self.settings = settings or SynthSettings()
        s = self.settings
        if s.skin_offset <= s.voxel / 2:
            raise ValueError(f"skin_offset ({s.skin_offset} m) must exceed half the voxel ({s.voxel / 2} m)")
        self.body = body
        self.bodies = BodySampler(body, s.family_weights, s.age_range, s.max_pose_retries, s.collision_tolerance)
        self._faces = body.faces.numpy().astype(np.int32)

    def __call__(self, rng: np.random.Generator) -> ClothedHuman:
        """A random clothed human; the same generator state gives the same arrays."""
        s = self.settings
        timings: dict[str, float] = {}
        with timed(timings, "pose"):
            sample = self.bodies.sample(rng, s.family)
        posed = sample.posed
        with timed(timings, "body"):
            heads = posed.bone_heads(self.bodies.bone_labels)
            head = self.bodies.bone_labels.index("head")
            head_transform = posed.transforms_from(sample.reference)[head]
            joints = self.body.regress_joints(torch.from_numpy(posed.vertices)[None])[0].numpy()
        for attempt in range(s.max_outfit_retries + 1):
            if s.garments:
                outfit = make_outfit(rng, s.garments)
            else:
                outfit = sample_outfit(rng, s.garment_weights)
            offsets, labels = vertex_layers(outfit, sample.regions, s.skin_offset)
            volumes = garment_volumes(outfit, sample.regions, posed.vertices, heads, head_transform)
            try:
                surface = extract_surface(
                    posed.vertices, self._faces, offsets, labels, volumes, s.voxel, s.blend, timings
                )
                break
            except SurfaceError:
                if attempt == s.max_outfit_retries:
                    raise
        with timed(timings, "colors"):
            materials = sample_materials(rng, outfit)
            colors = vertex_colors(materials, surface.vertices, surface.vertex_labels)
        return ClothedHuman(
            pose=sample.pose,
            shape=sample.shape,
            body_vertices=posed.vertices.astype(np.float32),
            body_joints=joints.astype(np.float32),
            cloth_vertices=surface.vertices,
            cloth_faces=surface.faces,
            cloth_face_labels=surface.face_labels,
            cloth_vertex_colors=colors,
            garments=[g.kind for g in outfit],
            pose_family=sample.family,
            timings=timings,
        )


def make_clothed_human(rng: np.random.Generator, body: AnnyBody, settings: SynthSettings | None = None) -> ClothedHuman:
    """One random clothed human (see :class:`ClothedHumanSampler` to make many)."""
    return ClothedHumanSampler(body, settings)(rng)
