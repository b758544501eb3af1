"""The joint network: image encoder, body GCN, clothed GCN and the mutualistic mechanism.

>>> model = MuNet(config, build_body_model(config.body))
>>> out = model(image, K)                    # MuNetOutput: body_vertices, body_joints, cloth_vertices, ...
>>> out = model(image, K, orthographic=flag)  # (B,) flag: which samples' K is orthographic
"""

from munet.model.camera import ORTHOGRAPHIC_DEPTH, translation_to_weak, weak_to_translation
from munet.model.mutual import MutualState, scale_gradient
from munet.model.network import MuNet, MuNetOutput
from munet.model.templates import PART_NAMES, Templates, build_templates

__all__ = [
    "ORTHOGRAPHIC_DEPTH",
    "PART_NAMES",
    "MuNet",
    "MuNetOutput",
    "MutualState",
    "Templates",
    "build_templates",
    "scale_gradient",
    "translation_to_weak",
    "weak_to_translation",
]
