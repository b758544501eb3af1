"""The joint network: image encoder, body GCN, clothed GCN and the mutualistic mechanism.

>>> model = MuNet(config, build_body_model(config.body))
>>> out = model(image, K)                    # MuNetOutput: body_vertices, body_joints, cloth_vertices, ...
"""

from munet.model.camera import perspective_to_weak, weak_to_perspective
from munet.model.mutual import MutualState, scale_gradient
from munet.model.network import MuNet, MuNetOutput
from munet.model.templates import PART_NAMES, Templates, build_templates

__all__ = [
    "PART_NAMES",
    "MuNet",
    "MuNetOutput",
    "MutualState",
    "Templates",
    "build_templates",
    "perspective_to_weak",
    "scale_gradient",
    "weak_to_perspective",
]
