"""An auxiliary 2D keypoint head: per-joint heatmaps over the encoder's feature maps.

Dense 2D supervision trains an encoder from scratch much faster than 3D regression from a pooled
feature alone, and it shapes the very feature maps the body GCN samples where its vertices project
(:class:`munet.model.body_gcn.BodyGCN`). The heatmaps are a training signal and a diagnostic; the
meshes never read them.
"""

from __future__ import annotations

import torch
from torch import nn

from munet.body.joints import COCO17_NAMES


class KeypointHead(nn.Module):
    """Feature maps ``(B, C, h, w)`` → heatmap logits ``(B, J, h, w)`` of the ``J`` = 17 COCO joints
    (``3×3 conv → ReLU → 1×1 conv``); a softmax over the ``h × w`` cells of a joint gives where
    it is (see :func:`munet.losses.body.heatmap_loss`)."""

    def __init__(self, channels: int, hidden: int = 64, joints: int = len(COCO17_NAMES)):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, joints, 1))

    def forward(self, feature_maps: torch.Tensor) -> torch.Tensor:
        return self.layers(feature_maps)
