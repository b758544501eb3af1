"""Image encoder: a torchvision ResNet giving a global feature and pixel-aligned feature maps.

Weights are never downloaded: they come from a local file (``model.encoder_weights``) or the
network starts from a random initialisation.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

ENCODERS = ("resnet18", "resnet34", "resnet50")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_encoder_weights(network: torchvision.models.ResNet, path: str | Path, name: str) -> None:
    """Load a torchvision ResNet state dict from ``path`` into ``network`` (the ``fc`` head is ignored).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a state dict of this ResNet (missing/unexpected keys or
            mismatched shapes, e.g. ResNet-50 weights for a ResNet-18).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"model.encoder_weights points to {path}, which does not exist. Give the path of a "
            f"torchvision {name} state dict (.pth), or leave it empty for a random initialisation."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, expected a state dict of {name}")
    backbone = {k: v for k, v in state.items() if not k.startswith("fc.")}
    expected = {k: v for k, v in network.state_dict().items() if not k.startswith("fc.")}
    missing = sorted(set(expected) - set(backbone))
    unexpected = sorted(set(backbone) - set(expected))
    wrong = sorted(k for k in set(expected) & set(backbone) if expected[k].shape != backbone[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path} is not a torchvision {name} state dict (model.encoder = {name!r}): "
            f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected keys "
            f"{unexpected[:3]}, {len(wrong)} keys with other shapes {wrong[:3]}"
        )
    network.load_state_dict(backbone, strict=False)


class ImageEncoder(nn.Module):
    """ResNet trunk → global feature ``(B, C)`` and feature maps ``(B, C', S/8, S/8)``.

    The feature maps concatenate ``layer2`` (stride 8) with ``layer3`` (stride 16, bilinearly
    upsampled to stride 8), so pixel-aligned sampling sees both local detail and context. The global
    feature is the average-pooled ``layer4``. Input images are RGB in ``[0, 1]``; ImageNet
    normalisation happens inside.

    Args:
        name: ``resnet18``, ``resnet34`` or ``resnet50``.
        weights: local state-dict file, or ``None`` for a random initialisation.

    Attributes:
        global_channels: ``C`` (512 for ResNet-18/34, 2048 for ResNet-50).
        map_channels: ``C'`` (384 for ResNet-18/34, 1536 for ResNet-50).
    """

    def __init__(self, name: str = "resnet18", weights: str | Path | None = None):
        super().__init__()
        if name not in ENCODERS:
            raise ValueError(f"unknown encoder {name!r}; choose one of {list(ENCODERS)}")
        network = getattr(torchvision.models, name)(weights=None)
        if weights:
            load_encoder_weights(network, weights, name)
        self.stem = nn.Sequential(network.conv1, network.bn1, network.relu, network.maxpool, network.layer1)
        self.layer2, self.layer3, self.layer4 = network.layer2, network.layer3, network.layer4
        expansion = 4 if name == "resnet50" else 1
        self.global_channels = 512 * expansion
        self.map_channels = (128 + 256) * expansion
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode ``image`` ``(B, 3, S, S)`` RGB in ``[0, 1]`` → ``(global (B, C), maps (B, C', S/8, S/8))``."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image must have shape (B, 3, S, S) RGB in [0, 1], got {tuple(image.shape)}")
        x = self.stem((image - self.mean) / self.std)
        fine = self.layer2(x)
        mid = self.layer3(fine)
        top = self.layer4(mid)
        mid_up = F.interpolate(mid, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return top.mean(dim=(2, 3)), torch.cat([fine, mid_up], dim=1)
