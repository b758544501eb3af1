"""A person mask for photos that come without one: OpenCV's GrabCut inside the person's box.

GrabCut (Rother et al., 2004) models the colours inside and outside a rectangle with Gaussian
mixtures and separates them with a graph cut. It needs no trained weights, so it runs offline, and
it works well when the person stands out from the background by colour; on cluttered scenes it can
leak into the background, so it is opt-in (``munet predict --segment``) and its mask is only used
when the image has none of its own.
"""

from __future__ import annotations

import cv2
import numpy as np

GRABCUT_ITERATIONS = 5
"""GrabCut's colour-model / graph-cut rounds."""
GRABCUT_SIDE = 320
"""Images are segmented at this longer side at most (GrabCut's cost grows with the pixel count)."""
WHOLE_IMAGE_MARGIN = 0.04
"""Without a box, the rectangle leaves this fraction of each side as sure background."""


def whole_image_box(width: int, height: int) -> tuple[float, float, float, float]:
    """The box GrabCut starts from when the person's box is not known: the image less a margin."""
    dx, dy = WHOLE_IMAGE_MARGIN * width, WHOLE_IMAGE_MARGIN * height
    return (dx, dy, width - dx, height - dy)


def grabcut_mask(rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The person's mask ``(H, W)`` bool in ``rgb`` ``(H, W, 3)`` uint8, by GrabCut inside ``box``
    ``(left, top, right, bottom)`` (pixel edges of ``rgb``; clipped to the image).

    Only the largest connected region is kept (a person is one piece).

    Raises:
        ValueError: a box too small to segment, or one that leaves no background around it (GrabCut
            learns the background from outside the box), or nothing found inside it.
    """
    height, width = rgb.shape[:2]
    scale = min(1.0, GRABCUT_SIDE / max(height, width))
    small = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    left, top = max(0, int(box[0] * scale)), max(0, int(box[1] * scale))
    right, bottom = min(small.shape[1], int(np.ceil(box[2] * scale))), min(small.shape[0], int(np.ceil(box[3] * scale)))
    if right - left < 8 or bottom - top < 8:
        raise ValueError(f"the box {tuple(round(v, 1) for v in box)} is too small to segment the person in")
    if left == 0 and top == 0 and right == small.shape[1] and bottom == small.shape[0]:
        raise ValueError(
            "the box covers the whole image, so GrabCut has no background to learn from: give a tighter --box"
        )
    labels = np.zeros(small.shape[:2], np.uint8)
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(
        np.ascontiguousarray(small[..., ::-1]),
        labels,
        (left, top, right - left, bottom - top),
        background,
        foreground,
        GRABCUT_ITERATIONS,
        cv2.GC_INIT_WITH_RECT,
    )
    person = ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.uint8)
    count, regions, stats, _ = cv2.connectedComponentsWithStats(person, connectivity=8)
    if count < 2:
        raise ValueError(
            "GrabCut found no person inside the box: give a mask file (<stem>_mask.png) or a tighter --box"
        )
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = (regions == largest).astype(np.float32)
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR) >= 0.5
