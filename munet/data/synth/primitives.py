"""Loose garment volumes that do not follow the skin: skirts, dress and coat tails, long hair.

Each is a :class:`SweptEllipse`: elliptic cross-sections at a few stations along a polyline,
joined by elliptic frustums (flat caps at both ends), with optional pleats (a radial ripple
around the axis that grows towards the hem). Its signed distance is approximate (exact on the
axis planes, within the ratio of the semi-axes elsewhere), which is all the surface extraction
needs: the zero level set and a consistent sign.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from munet.data.synth.regions import BodyPart, BodyRegions


@dataclass(frozen=True)
class SweptEllipse:
    """A chain of elliptic frustums.

    Attributes:
        centres: (K, 3) station centres, K >= 2, metres.
        semi_axes: (K, 2) lateral and depth semi-axes at each station, metres.
        lateral: (3,) the direction the first semi-axis points to (made orthogonal to each
            segment).
        pleats: number of ripples around the axis (0: none).
        pleat_depth: ripple amplitude, as a fraction of the radius, reached at the last station.
        pleat_phase: ripple phase, radians.
    """

    centres: np.ndarray
    semi_axes: np.ndarray
    lateral: np.ndarray
    pleats: int = 0
    pleat_depth: float = 0.0
    pleat_phase: float = 0.0

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned box (lo (3,), hi (3,)) that contains the volume."""
        reach = self.semi_axes.max() * (1 + self.pleat_depth)
        return self.centres.min(axis=0) - reach, self.centres.max(axis=0) + reach

    def sdf(self, points: np.ndarray, reach: float = np.inf) -> np.ndarray:
        """Approximate signed distance (N,) of points (N, 3): negative inside, metres.

        Points farther than about ``reach`` outside the volume may get ``+inf`` (they are
        skipped, which saves time on large grids).
        """
        out = np.full(len(points), np.inf, dtype=np.float32)
        steps = np.linalg.norm(np.diff(self.centres, axis=0), axis=1)
        progress = np.concatenate([[0.0], np.cumsum(steps)]) / max(steps.sum(), 1e-9)
        for k, length in enumerate(steps):
            if length < 1e-6:
                continue
            ends = self.centres[k : k + 2]
            radius = self.semi_axes[k : k + 2].max() * (1 + self.pleat_depth) + reach
            low, high = ends.min(axis=0) - radius, ends.max(axis=0) + radius
            index = np.flatnonzero(np.all((points > low) & (points < high), axis=1))
            axis = (ends[1] - ends[0]) / length
            across = self.lateral - (self.lateral @ axis) * axis
            across /= np.linalg.norm(across)
            depth_axis = np.cross(axis, across)
            offset = points[index] - ends[0]
            along = offset @ axis
            u = np.clip(along / length, 0.0, 1.0)
            a = (1 - u) * self.semi_axes[k, 0] + u * self.semi_axes[k + 1, 0]
            b = (1 - u) * self.semi_axes[k, 1] + u * self.semi_axes[k + 1, 1]
            x, y = (offset @ across) / a, (offset @ depth_axis) / b
            radius = 1.0
            if self.pleats:
                ripple = np.sin(self.pleats * np.arctan2(y, x) + self.pleat_phase)
                along_hem = (1 - u) * progress[k] + u * progress[k + 1]
                radius = 1.0 + self.pleat_depth * along_hem * ripple
            side = (np.sqrt(x * x + y * y) - radius) * np.minimum(a, b)
            caps = np.maximum(-along, along - length)
            out[index] = np.minimum(out[index], np.maximum(side, caps))
        return out


def cross_section(points: np.ndarray, axis: np.ndarray, lateral: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre (3,) and (lateral, depth) half-extents (2,) of points seen along ``axis``.

    The centre is the middle of the points' extent in the plane orthogonal to ``axis`` (their
    mean along it).
    """
    across = lateral - (lateral @ axis) * axis
    across /= np.linalg.norm(across)
    depth_axis = np.cross(axis, across)
    coords = points @ np.stack([across, depth_axis], axis=1)
    low, high = coords.min(axis=0), coords.max(axis=0)
    mid = (low + high) / 2
    centre = (points @ axis).mean() * axis + mid[0] * across + mid[1] * depth_axis
    return centre, (high - low) / 2


def leg_point(heads: dict[str, np.ndarray], side: str, s: float) -> np.ndarray:
    """Point at leg coordinate ``s`` (0 hip, 0.5 knee, 1 ankle) on the posed leg of ``side``."""
    hip, knee, ankle = (heads[f"{b}.{side}"] for b in ("upperleg01", "lowerleg01", "foot"))
    if s <= 0.5:
        return hip + (knee - hip) * (s / 0.5)
    return knee + (ankle - knee) * min((s - 0.5) / 0.5, 1.0)


def lower_body_sweep(
    regions: BodyRegions,
    vertices: np.ndarray,
    heads: dict[str, np.ndarray],
    top: float | None,
    length: float,
    ease: float,
    flare: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stations of a skirt-like volume around the posed lower body.

    Args:
        regions: the body's regions; vertices: (V, 3) posed vertices; heads: posed bone heads.
        top: torso height coordinate of the upper edge (waist), or None to start at the hips.
        length: leg coordinate of the hem (0 hip, 0.5 knee, 1 ankle).
        ease: extra half-width everywhere, metres. flare: extra half-width at the hem, metres.

    Returns:
        centres (K, 3), semi-axes (K, 2) and the lateral direction (3,) for :class:`SweptEllipse`:
        the body's cross-section at the waist and the hips, then at the knees (hem below the knee)
        and the hem, where the ellipse spans both legs.
    """
    lateral = heads["upperleg01.L"] - heads["upperleg01.R"]
    lateral /= np.linalg.norm(lateral)
    up = heads["neck01"] - heads["spine05"]
    up /= np.linalg.norm(up)
    trunk = regions.part == BodyPart.TORSO
    legs = np.isin(regions.part, (BodyPart.UPPER_LEG, BodyPart.LOWER_LEG))
    centres, semi = [], []
    heights = ([top] if top is not None else []) + [-0.15]
    for height in heights:
        band = (trunk | legs) & (np.abs(regions.height - height) < 0.05)
        centre, half = cross_section(vertices[band], up, lateral)
        centres.append(centre)
        semi.append(half + ease * (0.5 if height == top else 1.0))
    stations = [0.5, length] if length > 0.6 else [length]
    for s in stations:
        left, right = leg_point(heads, "L", s), leg_point(heads, "R", s)
        centre = (left + right) / 2
        axis = centre - centres[-1]
        axis /= np.linalg.norm(axis)
        radius = max(
            _limb_radius(vertices, legs & (regions.side == sign), regions.limb, s, point)
            for sign, point in ((1, left), (-1, right))
        )
        across = lateral - (lateral @ axis) * axis
        across /= np.linalg.norm(across)
        spread = np.abs((left - right) @ np.stack([across, np.cross(axis, across)], axis=1)) / 2
        centres.append(centre)
        semi.append(spread + radius + ease + flare * s / length)
    return np.array(centres), np.array(semi), lateral


def _limb_radius(vertices: np.ndarray, mask: np.ndarray, limb: np.ndarray, s: float, point: np.ndarray) -> float:
    """90th percentile distance from ``point`` of the masked vertices near limb coordinate s."""
    near = mask & (np.abs(limb - s) < 0.04)
    if not near.any():
        raise ValueError(f"no limb vertex near coordinate {s:.2f}: is this a full Anny body?")
    return float(np.percentile(np.linalg.norm(vertices[near] - point, axis=1), 90))


def head_frame(regions: BodyRegions) -> tuple[np.ndarray, float]:
    """Reference-pose head centre (3,) and radius, metres: the centre and mean half-side of the
    head vertices' bounding box (the dense face mesh would bias a vertex mean forwards)."""
    head = regions.vertices[regions.part == BodyPart.HEAD]
    low, high = head.min(axis=0), head.max(axis=0)
    return (low + high) / 2, float((high - low).mean() / 2)
