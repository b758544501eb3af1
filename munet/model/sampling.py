"""Pixel-aligned features: image feature maps read where camera-frame points project."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from munet.geometry import project
from munet.model.camera import pixels_to_normalized


def sample_pixel_features(
    feature_maps: torch.Tensor,
    points: torch.Tensor,
    K: torch.Tensor,
    image_size: int,
    orthographic: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pixel-aligned features: bilinear samples of ``feature_maps`` where ``points`` project.

    Args:
        feature_maps: ``(B, C, h, w)`` maps covering the whole ``image_size`` crop.
        points: ``(B, N, 3)`` camera-frame points, metres.
        K: ``(B, 3, 3)`` intrinsics in pixels of the crop.
        image_size: ``S``, side of the crop in pixels.
        orthographic: ``(B,)`` flag, nonzero where ``K`` is orthographic (``None``: all
            perspective; :func:`munet.geometry.project`).

    Returns:
        ``(B, N, C)``; points projecting outside the crop get zeros. Differentiable with respect to
        the maps and the points.
    """
    grid = pixels_to_normalized(project(points, K, orthographic), image_size)[:, :, None, :]  # (B, N, 1, 2)
    sampled = F.grid_sample(feature_maps, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return sampled[..., 0].transpose(1, 2)
