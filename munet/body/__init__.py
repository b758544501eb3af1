"""Parametric body models behind one interface (:class:`BodyModel`).

>>> body = build_body_model(BodyConfig())          # Anny, the default
>>> out = body(pose, shape, transl)                # out.vertices (B, V, 3), out.joints (B, 17, 3)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import cache

from munet.body.base import BodyModel, BodyOutput
from munet.body.joints import COCO17_NAMES, COCO17_PELVIS, pelvis
from munet.config import BodyConfig

BACKENDS = ("anny", "smplx")


def build_body_model(config: BodyConfig) -> BodyModel:
    """Construct the body model a configuration names.

    Raises:
        ValueError: unknown backend (the message lists the valid ones).
    """
    if config.backend == "anny":
        from munet.body.anny_backend import AnnyBody

        return AnnyBody(topology=config.topology, cache_dir=config.cache_dir)
    if config.backend == "smplx":
        from munet.body.smplx_backend import SMPLXBody

        return SMPLXBody(
            model_dir=config.model_dir,
            model_type=config.model_type,
            gender=config.gender,
            num_betas=config.num_betas,
        )
    raise ValueError(f"Unknown body backend {config.backend!r}; choose one of {list(BACKENDS)}")


@dataclass(frozen=True)
class BodyTopology:
    """What a body model's mesh targets look like: a sample's body mesh supervises a model only
    when its ``backend`` names the same topology with the same sizes.

    Attributes:
        name: the model's name (``anny``, ``smpl``, ``smplh``, ``smplx``), as a sample's
            ``body.npz`` ``backend`` says it.
        vertices: V, mesh vertices.
        pose_dim: P, pose parameters.
        shape_dim: B, shape parameters.
    """

    name: str
    vertices: int
    pose_dim: int
    shape_dim: int


def body_name(config: BodyConfig) -> str:
    """The name of the body model ``config`` builds (its ``BodyModel.name``: ``anny``, or the
    ``smplx`` backend's ``model_type``), which samples' ``body.npz`` ``backend`` must say for their
    body mesh to supervise it."""
    return "anny" if config.backend == "anny" else config.model_type


def body_topology(config: BodyConfig) -> BodyTopology:
    """The topology of the body model ``config`` names (built once per process and setting)."""
    return _topology(json.dumps(dataclasses.asdict(config), sort_keys=True))


@cache
def _topology(config_json: str) -> BodyTopology:
    model = build_body_model(BodyConfig(**json.loads(config_json)))
    return BodyTopology(model.name, model.num_vertices, model.pose_dim, model.shape_dim)


__all__ = [
    "BACKENDS",
    "BodyModel",
    "BodyOutput",
    "BodyTopology",
    "COCO17_NAMES",
    "COCO17_PELVIS",
    "body_name",
    "body_topology",
    "build_body_model",
    "pelvis",
]
