"""Person masks as differentiable targets for projected mesh vertices.

Two costs, both in pixels divided by the mask's side (so they do not depend on its resolution):

- *outside*: every projected vertex should fall on the mask. Its cost is the squared distance from
  the vertex to the nearest mask pixel, read bilinearly from the mask's outside distance transform
  (zero on the mask);
- *coverage*: the mask's outline should be reached by the mesh. Its cost is, for points spread
  along the outline, the squared distance to the nearest projected vertex beyond a tolerance of a
  few pixels (vertices are spaced a few pixels apart, so an exact match is never expected).

Together they pull a mesh onto a silhouette from both sides: the first shrinks what sticks out, the
second stretches the mesh into what it leaves uncovered.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from munet.model.camera import pixels_to_normalized


@dataclass(frozen=True)
class MaskTargets:
    """What the costs compare projected vertices against, for a batch of square masks.

    Attributes:
        distance: ``(B, 1, S, S)`` float32 distance (pixels) from each pixel to the nearest mask
            pixel (zero on the mask).
        outline: ``(B, N, 2)`` float32 pixel positions ``(u, v)`` spread evenly along each mask's
            outline.
        size: ``S``, the masks' side in pixels.
    """

    distance: torch.Tensor
    outline: torch.Tensor
    size: int


def outline_points(mask: np.ndarray, count: int) -> np.ndarray:
    """``count`` pixel positions ``(u, v)`` evenly spaced along the outer outlines of ``mask``.

    Raises:
        ValueError: an empty mask.
    """
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        raise ValueError("the person mask is empty: nothing to fit to")
    points = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float32)
    picks = np.linspace(0, len(points), count, endpoint=False).astype(np.int64)
    return points[picks]


def mask_targets(masks: list[np.ndarray], outline_count: int, device: torch.device | str = "cpu") -> MaskTargets:
    """Targets of square boolean masks ``(S, S)`` (all the same size).

    Raises:
        ValueError: masks of different or non-square shapes, or an empty mask.
    """
    shapes = {m.shape for m in masks}
    if len(shapes) != 1 or (shape := shapes.pop())[0] != shape[1] or len(shape) != 2:
        raise ValueError(f"masks must all be square (S, S) arrays of one size, got {[m.shape for m in masks]}")
    outside = [cv2.distanceTransform((~m.astype(bool)).astype(np.uint8), cv2.DIST_L2, 5) for m in masks]
    outlines = [outline_points(m, outline_count) for m in masks]
    return MaskTargets(
        distance=torch.as_tensor(np.stack(outside), device=device)[:, None],
        outline=torch.as_tensor(np.stack(outlines), device=device),
        size=int(shape[0]),
    )


def outside_cost(pixels: torch.Tensor, targets: MaskTargets) -> torch.Tensor:
    """``(B,)`` mean squared distance (in mask sides) of projected points ``(B, N, 2)`` to the mask.

    Points beyond the border read the border's distance (no gradient pulls them back in from there;
    the coverage cost does).
    """
    grid = pixels_to_normalized(pixels, targets.size)[:, :, None]
    distance = F.grid_sample(targets.distance, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return (distance[:, 0, :, 0] / targets.size).square().mean(dim=1)


def coverage_cost(pixels: torch.Tensor, targets: MaskTargets, tolerance: float) -> torch.Tensor:
    """``(B,)`` mean over outline points of the squared distance (in mask sides) to the nearest
    projected point ``(B, N, 2)``, less ``tolerance`` pixels.

    The nearest point is found without gradient and the distance to it is then differentiated:
    the same gradient as that of the minimum, without back-propagating through all distances.
    """
    with torch.no_grad():
        nearest = torch.cdist(targets.outline, pixels).argmin(dim=2)
    chosen = torch.gather(pixels, 1, nearest[..., None].expand(-1, -1, 2))
    distance = ((chosen - targets.outline).square().sum(dim=2) + 1e-12).sqrt()
    return ((distance - tolerance).clamp_min(0.0) / targets.size).square().mean(dim=1)
