"""Parametric body models behind one interface (:class:`BodyModel`).

>>> body = build_body_model(BodyConfig())          # Anny, the default
>>> out = body(pose, shape, transl)                # out.vertices (B, V, 3), out.joints (B, 17, 3)
"""

from __future__ import annotations

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


__all__ = [
    "BACKENDS",
    "BodyModel",
    "BodyOutput",
    "COCO17_NAMES",
    "COCO17_PELVIS",
    "build_body_model",
    "pelvis",
]
