"""Image encoder: a torchvision ResNet or MobileNetV3 giving a global feature and pixel-aligned feature maps.

Weights are never downloaded: they come from a local file (``model.encoder_weights``) or the
network starts from a random initialisation.

Normalisation (``model.encoder_norm``) must behave the same in training and at inference:

- ``group``: GroupNorm (per sample, no running statistics), the choice when training from scratch.
  BatchNorm trained from scratch at a few samples per worker keeps running statistics that never
  match the weights, and the model then predicts something else in eval mode than in training.
- ``frozen_batch``: BatchNorm with the statistics and affine terms of the pretrained file frozen
  (torchvision's ``FrozenBatchNorm2d``), the choice when fine-tuning pretrained weights.
- ``batch``: plain BatchNorm, only for large per-device batches.
- ``auto`` (default): ``frozen_batch`` with ``model.encoder_weights``, ``group`` without.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

ENCODERS = ("resnet18", "resnet34", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large")
NORMS = ("auto", "group", "frozen_batch", "batch")

MAX_GROUPS = 32
"""GroupNorm groups of a ``C``-channel layer: ``gcd(C, MAX_GROUPS)`` (8 to 32 for these trunks)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _head_prefix(name: str) -> str:
    """State-dict prefix of the classification head the encoder drops."""
    return "classifier." if name.startswith("mobilenet") else "fc."


def load_encoder_weights(network: nn.Module, path: str | Path, name: str) -> None:
    """Load a torchvision state dict for encoder ``name`` from ``path`` into ``network`` (the
    classification head is ignored).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a state dict of this network (missing/unexpected keys or
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
    head = _head_prefix(name)
    # Frozen BatchNorm has no step counter: the file's num_batches_tracked entries are not weights.
    backbone = {k: v for k, v in state.items() if not k.startswith(head) and not k.endswith("num_batches_tracked")}
    expected = {
        k: v
        for k, v in network.state_dict().items()
        if not k.startswith(head) and not k.endswith("num_batches_tracked")
    }
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


def resolve_norm(norm: str, weights: str | Path | None) -> str:
    """The normalisation ``auto`` stands for (see the module documentation); others unchanged."""
    if norm not in NORMS:
        raise ValueError(f"unknown model.encoder_norm {norm!r}; choose one of {list(NORMS)}")
    if norm == "auto":
        return "frozen_batch" if weights else "group"
    return norm


def norm_layer(norm: str, name: str) -> Callable[[int], nn.Module]:
    """The ``norm_layer`` factory torchvision's constructors take, for a resolved ``norm``.

    MobileNetV3's BatchNorm uses ``eps = 1e-3`` (ResNets ``1e-5``); the frozen and plain variants
    keep it, so that pretrained statistics mean the same.
    """
    eps = 1e-3 if name.startswith("mobilenet") else 1e-5
    if norm == "group":
        return lambda channels: nn.GroupNorm(math.gcd(channels, MAX_GROUPS), channels)
    if norm == "frozen_batch":
        return functools.partial(FrozenBatchNorm2d, eps=eps)
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, eps=eps, momentum=0.01 if eps == 1e-3 else 0.1)
    raise ValueError(f"norm must be resolved first (resolve_norm), got {norm!r}")


def _stages(network: nn.Module, name: str) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
    """Split a torchvision network into (stem → stride 4, → stride 8, → stride 16, → stride 32)."""
    if name.startswith("mobilenet"):
        # Indices of the first block at stride 8, 16 and 32 in torchvision's ``features``.
        s8, s16, s32 = (2, 4, 9) if name == "mobilenet_v3_small" else (4, 7, 13)
        f = network.features
        return f[:s8], f[s8:s16], f[s16:s32], f[s32:]
    stem = nn.Sequential(network.conv1, network.bn1, network.relu, network.maxpool, network.layer1)
    return stem, network.layer2, network.layer3, network.layer4


def _out_channels(stage: nn.Module) -> int:
    """Channels a stage outputs: those of its last convolution (a ResNet block's last conv, a
    MobileNetV3 block's projection or final 1×1 conv; shortcut convs only open a stage)."""
    return [m for m in stage.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


class ImageEncoder(nn.Module):
    """CNN trunk → global feature ``(B, C)`` and feature maps ``(B, C', S/8, S/8)``.

    The feature maps concatenate the stride-8 stage with the stride-16 stage (bilinearly
    upsampled to stride 8), so pixel-aligned sampling sees both local detail and context. The global
    feature is the average-pooled last stage. Input images are RGB in ``[0, 1]``; ImageNet
    normalisation happens inside.

    Args:
        name: one of :data:`ENCODERS` (torchvision ResNets; MobileNetV3 for small models).
        weights: local state-dict file, or ``None`` for a random initialisation.
        norm: one of :data:`NORMS` (see the module documentation).

    Attributes:
        global_channels: ``C`` (512 for ResNet-18/34, 2048 for ResNet-50, 576 for MobileNetV3-small).
        map_channels: ``C'`` (384 for ResNet-18/34, 1536 for ResNet-50, 72 for MobileNetV3-small).
    """

    def __init__(self, name: str = "resnet18", weights: str | Path | None = None, norm: str = "auto"):
        super().__init__()
        if name not in ENCODERS:
            raise ValueError(f"unknown encoder {name!r}; choose one of {list(ENCODERS)}")
        self.norm = resolve_norm(norm, weights)
        if self.norm == "group" and weights:
            raise ValueError(
                "model.encoder_norm 'group' cannot use the BatchNorm statistics of model.encoder_weights; "
                "use 'frozen_batch' (or 'auto') with pretrained weights"
            )
        network = getattr(torchvision.models, name)(weights=None, norm_layer=norm_layer(self.norm, name))
        if weights:
            load_encoder_weights(network, weights, name)
        self.stem, self.layer2, self.layer3, self.layer4 = _stages(network, name)
        self.global_channels = _out_channels(self.layer4)
        self.map_channels = _out_channels(self.layer2) + _out_channels(self.layer3)
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
