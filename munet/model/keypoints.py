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


def soft_argmax(logits: torch.Tensor) -> torch.Tensor:
    """Expected cell centres of heatmaps ``(B, J, h, w)`` under their softmax, in normalised image
    coordinates (``[-1, 1]``, :mod:`munet.model.camera`): ``(B, J, 2)`` as ``(x, y)``. Differentiable."""
    _, _, h, w = logits.shape
    weights = torch.softmax(logits.flatten(2), dim=-1).unflatten(-1, (h, w))
    xs = (2 * torch.arange(w, device=logits.device, dtype=logits.dtype) + 1) / w - 1
    ys = (2 * torch.arange(h, device=logits.device, dtype=logits.dtype) + 1) / h - 1
    return torch.stack([(weights.sum(-2) * xs).sum(-1), (weights.sum(-1) * ys).sum(-1)], dim=-1)


class KeypointHead(nn.Module):
    """Feature maps ``(B, C, h, w)`` → heatmap logits ``(B, J, h, w)`` of the ``J`` = 17 COCO joints
    (``3×3 conv → ReLU → 1×1 conv``; a softmax over the ``h × w`` cells of a joint gives where
    it is, see :func:`munet.losses.body.heatmap_loss`), and a pose code ``(B, D)``: the joints'
    :func:`soft_argmax` positions through a small MLP, which the body branch adds to the global
    image feature (a 2D skeleton says much about the articulation, as in 2D-to-3D lifting).

    Args:
        channels: ``C``.
        code_channels: ``D``, the width of the global image feature.
        hidden: width of the hidden layers.
        joints: ``J``.
    """

    def __init__(self, channels: int, code_channels: int, hidden: int = 64, joints: int = len(COCO17_NAMES)):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, joints, 1))
        self.code = nn.Sequential(nn.Linear(2 * joints, 4 * hidden), nn.ReLU(), nn.Linear(4 * hidden, code_channels))

    def forward(self, feature_maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(heatmap logits (B, J, h, w), pose code (B, D))``."""
        logits = self.layers(feature_maps)
        return logits, self.code(soft_argmax(logits).flatten(1))
