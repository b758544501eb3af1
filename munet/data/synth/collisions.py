"""Self-intersection test of a posed body: capsules around limbs and trunk.

Limbs and trunk are approximated by capsules between posed bone heads, with radii measured on
the body in its reference pose (a low percentile of the part's vertex distances to the segment,
so that a capsule sits inside its limb). A pose self-intersects when two capsules that should not
touch (forearms and hands against the trunk, head, thighs and the other arm; each leg against
the other; shins and feet against the trunk and head) overlap by more than a tolerance: gross
interpenetration is caught, skin contact (crossed arms, hands on the lap) is allowed.
"""

from __future__ import annotations

import numpy as np

from munet.data.synth.regions import (
    BodyPart,
    BodyRegions,
    bone_side,
    mirror_bone,
    segment_closest,
)

Ends = tuple[tuple[str, ...], tuple[str, ...]]

_LEFT_AND_CENTRE: dict[str, Ends] = {
    "spine": (("spine05",), ("neck01",)),
    "pelvis": (("upperleg01.L",), ("upperleg01.R",)),
    "chest": (("shoulder01.L",), ("shoulder01.R",)),
    "head": (("head",), ("eye.L", "eye.R")),
    "upperarm.L": (("upperarm01.L",), ("lowerarm01.L",)),
    "forearm.L": (("lowerarm01.L",), ("wrist.L",)),
    "hand.L": (("wrist.L",), ("finger3-1.L",)),
    "thigh.L": (("upperleg01.L",), ("lowerleg01.L",)),
    "shin.L": (("lowerleg01.L",), ("foot.L",)),
    "foot.L": (("foot.L",), ("toe3-1.L",)),
}
_CAPSULE_PARTS = {
    "head": BodyPart.HEAD,
    "upperarm": BodyPart.UPPER_ARM,
    "forearm": BodyPart.LOWER_ARM,
    "hand": BodyPart.HAND,
    "thigh": BodyPart.UPPER_LEG,
    "shin": BodyPart.LOWER_LEG,
    "foot": BodyPart.FOOT,
}
_TRUNK = ("spine", "pelvis", "chest")


def _with_right_side(capsules: dict[str, Ends]) -> dict[str, Ends]:
    out = dict(capsules)
    for name, (start, end) in capsules.items():
        if name.endswith(".L"):
            mirrored = tuple(tuple(mirror_bone(b) for b in bones) for bones in (start, end))
            out[mirror_bone(name)] = mirrored
    return out


CAPSULES: dict[str, Ends] = _with_right_side(_LEFT_AND_CENTRE)
"""Capsule name -> (start, end), each end the mean of one or more bone heads."""


def _forbidden_pairs() -> list[tuple[str, str]]:
    pairs = []
    for side, other in ((".L", ".R"), (".R", ".L")):
        for limb in ("forearm", "hand"):
            targets = [*_TRUNK, "head", "thigh.L", "thigh.R"]
            targets += [f"{o}{other}" for o in ("upperarm", "forearm", "hand")]
            pairs += [(limb + side, t) for t in targets]
        for limb in ("shin", "foot"):
            pairs += [(limb + side, t) for t in (*_TRUNK, "head")]
    legs = ("thigh", "shin", "foot")
    pairs += [(a + ".L", b + ".R") for a in legs for b in legs]
    return sorted({tuple(sorted(p)) for p in pairs})


CAPSULE_PAIRS: list[tuple[str, str]] = _forbidden_pairs()
"""Capsule pairs that must not interpenetrate (each pair once)."""


def segment_distances(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """Shortest distances between segments ``p0-p1`` and ``q0-q1`` (arrays (N, 3)) -> (N,)."""
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a = np.einsum("ij,ij->i", d1, d1)
    e = np.einsum("ij,ij->i", d2, d2)
    b = np.einsum("ij,ij->i", d1, d2)
    c = np.einsum("ij,ij->i", d1, r)
    f = np.einsum("ij,ij->i", d2, r)
    denom = a * e - b * b
    s = np.where(denom > 1e-12, np.clip((b * f - c * e) / np.maximum(denom, 1e-12), 0, 1), 0.0)
    t = (b * s + f) / e
    s = np.where(t < 0, np.clip(-c / a, 0, 1), np.where(t > 1, np.clip((b - c) / a, 0, 1), s))
    t = np.clip(t, 0, 1)
    closest = (p0 + d1 * s[:, None]) - (q0 + d2 * t[:, None])
    return np.linalg.norm(closest, axis=1)


class CapsuleBody:
    """Capsules of one body shape for the self-intersection test.

    Args:
        regions: the shape's regions (reference-pose vertices and parts).
        reference_heads: (J, 3) reference-pose bone heads; bone_labels: their labels.
        percentile: radius of a capsule = this percentile of its part's vertex distances to
            its reference-pose segment (trunk vertices go to the nearest trunk capsule).
    """

    def __init__(
        self,
        regions: BodyRegions,
        reference_heads: np.ndarray,
        bone_labels: list[str],
        percentile: float = 25.0,
    ):
        index = {label: i for i, label in enumerate(bone_labels)}
        self.names = list(CAPSULES)
        self._start = [[index[b] for b in start] for start, _ in CAPSULES.values()]
        self._end = [[index[b] for b in end] for _, end in CAPSULES.values()]
        start, end = self.segments(reference_heads)

        def distances(i: int, mask: np.ndarray) -> np.ndarray:
            return segment_closest(regions.vertices[mask], start[i], end[i])[1]

        trunk = regions.part == BodyPart.TORSO
        trunk_ids = [self.names.index(n) for n in _TRUNK]
        to_trunk = np.stack([distances(i, trunk) for i in trunk_ids])
        nearest = to_trunk.argmin(axis=0)
        samples = {i: to_trunk[k][nearest == k] for k, i in enumerate(trunk_ids)}
        for i, name in enumerate(self.names):
            if name not in _TRUNK:
                mask = regions.part == _CAPSULE_PARTS[name.split(".")[0]]
                if name.endswith((".L", ".R")):
                    mask &= regions.side == bone_side(name)
                samples[i] = distances(i, mask)
        self.radii = np.array([np.percentile(samples[i], percentile) for i in range(len(samples))])
        self._pairs = np.array([[self.names.index(n) for n in pair] for pair in CAPSULE_PAIRS])

    def segments(self, heads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Capsule end points (C, 3) and (C, 3) for bone heads (J, 3)."""
        start = np.stack([heads[i].mean(axis=0) for i in self._start])
        end = np.stack([heads[i].mean(axis=0) for i in self._end])
        return start, end

    def penetrations(self, heads: np.ndarray) -> np.ndarray:
        """Overlap depth (metres, (P,)) of each pair of :data:`CAPSULE_PAIRS` for posed heads."""
        start, end = self.segments(heads)
        a, b = self._pairs[:, 0], self._pairs[:, 1]
        gaps = segment_distances(start[a], end[a], start[b], end[b])
        return self.radii[a] + self.radii[b] - gaps
