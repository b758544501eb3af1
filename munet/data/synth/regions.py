"""Body regions of the Anny mesh: a part label and limb coordinates for every vertex.

Garments are defined on these: "a T-shirt covers the torso above the hem and the arms up to the
sleeve length". They are computed on the body in Anny's reference pose (the zero pose, an upright
A-pose), so they are attached to the vertices and follow the body through any pose.

- ``part``: the :class:`BodyPart` of the vertex's most weighted skinning bone;
- ``side``: +1 left (+X), -1 right, 0 centre (from the bone name);
- ``limb``: position along the limb, 0 at the shoulder/hip joint, 0.5 at the elbow/knee, 1 at the
  wrist/ankle (the closest point of the joint polyline), above 1 on hands and feet (1 + half
  the distance from the wrist/ankle in forearm/shin lengths); 0 on the head, neck and torso;
- ``height``: reference-pose height normalised so that 0 is the hip joints and 1 the shoulder
  joints (the waist is near 0.4, the crotch near -0.3, the knees near -1.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class BodyPart(IntEnum):
    """Coarse body parts, from the skinning bone of largest weight."""

    HEAD = 0
    NECK = 1
    TORSO = 2
    UPPER_ARM = 3
    LOWER_ARM = 4
    HAND = 5
    UPPER_LEG = 6
    LOWER_LEG = 7
    FOOT = 8


_BONE_PREFIX_PARTS: tuple[tuple[str, BodyPart], ...] = (
    ("head", BodyPart.HEAD),
    ("eye", BodyPart.HEAD),
    ("neck", BodyPart.NECK),
    ("root", BodyPart.TORSO),
    ("pelvis", BodyPart.TORSO),
    ("spine", BodyPart.TORSO),
    ("clavicle", BodyPart.TORSO),
    ("shoulder", BodyPart.TORSO),
    ("upperarm", BodyPart.UPPER_ARM),
    ("lowerarm", BodyPart.LOWER_ARM),
    ("wrist", BodyPart.HAND),
    ("metacarpal", BodyPart.HAND),
    ("finger", BodyPart.HAND),
    ("upperleg", BodyPart.UPPER_LEG),
    ("lowerleg", BodyPart.LOWER_LEG),
    ("foot", BodyPart.FOOT),
    ("toe", BodyPart.FOOT),
)


def bone_part(label: str) -> BodyPart:
    """The body part of an Anny bone (``"lowerarm01.L"`` -> ``LOWER_ARM``).

    Raises:
        ValueError: a bone name this table does not know (a rig other than Anny's default).
    """
    for prefix, part in _BONE_PREFIX_PARTS:
        if label.startswith(prefix):
            return part
    raise ValueError(f"bone {label!r} has no body part; extend _BONE_PREFIX_PARTS for this rig")


def bone_side(label: str) -> int:
    """+1 for a left bone (``*.L``), -1 for a right one (``*.R``), 0 otherwise."""
    return 1 if label.endswith(".L") else -1 if label.endswith(".R") else 0


def mirror_bone(label: str) -> str:
    """The bone on the other side (``"foot.L"`` <-> ``"foot.R"``); centre bones stay."""
    if label.endswith(".L"):
        return label[:-2] + ".R"
    if label.endswith(".R"):
        return label[:-2] + ".L"
    return label


def segment_closest(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest points of segment ``start``-``end`` to points (N, 3).

    Returns:
        the segment parameter (N,) in [0, 1] and the distance (N,) of each closest point.
    """
    direction = end - start
    t = np.clip((points - start) @ direction / max(float(direction @ direction), 1e-12), 0.0, 1.0)
    return t, np.linalg.norm(points - (start + t[:, None] * direction), axis=1)


def _polyline_coordinate(points: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Coordinate of the closest point on polyline a-b-c: 0 at a, 0.5 at b, 1 at c."""
    first, to_first = segment_closest(points, a, b)
    second, to_second = segment_closest(points, b, c)
    return np.where(to_first <= to_second, 0.5 * first, 0.5 + 0.5 * second)


@dataclass
class BodyRegions:
    """Per-vertex region data of one body (see the module docstring). Arrays have length V."""

    part: np.ndarray
    side: np.ndarray
    limb: np.ndarray
    height: np.ndarray
    vertices: np.ndarray
    """(V, 3) the reference-pose vertices the coordinates were measured on, metres."""

    @classmethod
    def measure(
        cls,
        vertices: np.ndarray,
        heads: dict[str, np.ndarray],
        vertex_bone: np.ndarray,
        bone_labels: list[str],
    ) -> BodyRegions:
        """Measure the regions on a body in the reference pose.

        Args:
            vertices: (V, 3) reference-pose vertices, metres, Anny frame (Z up).
            heads: reference-pose positions (3,) of the bone heads, by label (needs the
                ``upperarm01``, ``lowerarm01``, ``wrist``, ``upperleg01``, ``lowerleg01`` and
                ``foot`` bones of both sides).
            vertex_bone: (V,) index of each vertex's most weighted bone.
            bone_labels: the rig's bone labels, indexed by ``vertex_bone``.
        """
        parts = np.array([bone_part(label) for label in bone_labels], dtype=np.int8)
        sides = np.array([bone_side(label) for label in bone_labels], dtype=np.int8)
        part, side = parts[vertex_bone], sides[vertex_bone]
        limb = np.zeros(len(vertices), dtype=np.float32)
        chains = (
            (("upperarm01", "lowerarm01", "wrist"), (BodyPart.UPPER_ARM, BodyPart.LOWER_ARM)),
            (("upperleg01", "lowerleg01", "foot"), (BodyPart.UPPER_LEG, BodyPart.LOWER_LEG)),
        )
        for names, segments in chains:
            extremity = segments[1] + 1  # HAND after LOWER_ARM, FOOT after LOWER_LEG
            for suffix, sign in ((".L", 1), (".R", -1)):
                a, b, c = (heads[name + suffix] for name in names)
                mask = np.isin(part, segments) & (side == sign)
                limb[mask] = _polyline_coordinate(vertices[mask], a, b, c)
                mask = (part == extremity) & (side == sign)
                reach = np.linalg.norm(vertices[mask] - c, axis=1) / np.linalg.norm(c - b)
                limb[mask] = 1.0 + 0.5 * reach
        hip_z = (heads["upperleg01.L"][2] + heads["upperleg01.R"][2]) / 2
        shoulder_z = (heads["upperarm01.L"][2] + heads["upperarm01.R"][2]) / 2
        height = (vertices[:, 2] - hip_z) / (shoulder_z - hip_z)
        return cls(part, side, limb, height.astype(np.float32), vertices)
