"""The Anny body model (default backend): MakeHuman-based, CC0 data shipped in the wheel.

Anny's native frame is Z up, front −Y, metres. Poses are per-bone axis-angle rotations in Anny's
``local-ref`` parameterisation (root bone first); shapes are Anny's phenotype values in [0, 1]
(``gender, age, muscle, weight, height, proportions``).

The first construction of a topology builds Anny's model cache (about two minutes, once per
machine and topology); later constructions load it in seconds.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import anny
import torch
from pytorch3d.transforms import axis_angle_to_matrix

from munet.body.base import BodyModel
from munet.body.joints import COCO17_NAMES
from munet.console import quiet_warp
from munet.graph.symmetry import mirror_indices

quiet_warp()  # Anny skins on Warp: no banner per process (munet.console)

log = logging.getLogger(__name__)

REFUSED_TOPOLOGIES = ("smpl", "smplx")
"""Anny topologies that download non-commercial files at build time: never built implicitly."""

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "anny"


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    """The Anny cache folder: the argument, else ``$ANNY_CACHE_DIR``, else ``~/.cache/anny``.

    Raises:
        PermissionError: the folder cannot be created or written.
    """
    path = Path(cache_dir or os.environ.get("ANNY_CACHE_DIR") or DEFAULT_CACHE_DIR).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise PermissionError(
            f"The Anny cache directory {path} is not writable ({exc.strerror}). Set body.cache_dir "
            "in the config or ANNY_CACHE_DIR to a folder you can write to."
        ) from exc
    return path.resolve()


def _cache_is_built(cache_dir: Path) -> bool:
    return any(cache_dir.glob("**/build_model_data_*.safetensors"))


def load_anny(topology: str, cache_dir: str | os.PathLike | None = None):
    """Build or load ``anny.Anny`` for ``topology`` in float32, refusing downloading topologies.

    Raises:
        ValueError: a topology that would download files (``smpl``, ``smplx``) or is unknown.
        PermissionError: the cache directory is not writable.
    """
    base = topology.split("-")[0]
    if base in REFUSED_TOPOLOGIES:
        raise ValueError(
            f"Anny topology {topology!r} downloads non-commercial SMPL data, which this project never "
            "does. Use the 'smplx' body backend with your own licensed model files instead, or an "
            "Anny topology such as 'anny-noeyes-notongue'."
        )
    cache = resolve_cache_dir(cache_dir)
    import anny.paths

    anny.paths.set_anny_cache_path(cache)
    if not _cache_is_built(cache):
        log.warning(
            "Building the Anny model cache in %s (first use on this machine: about 2 minutes)...",
            cache,
        )
    try:
        model = anny.Anny(topology=topology)
    except ValueError as exc:
        raise ValueError(f"Unknown or invalid Anny topology {topology!r}: {exc}") from exc
    return model.to(torch.float32)


def coco17_regressor(model) -> torch.Tensor:
    """COCO-17 joint regressor (17, V) for an Anny model of a MakeHuman-derived topology.

    Anny ships COCO keypoint weights over its full base mesh. Topologies that drop vertices
    (``noeyes`` removes the eyeballs, which carry ~70% of each eye keypoint's weight) keep only the
    weights of retained vertices; each row is renormalised to sum to one, so an eye keypoint
    becomes the weighted centre of the surrounding eyelid vertices (within a few millimetres).
    """
    path = Path(anny.__file__).resolve().parent / "data" / "keypoints" / "coco.pth"
    weights = torch.load(path, weights_only=True, map_location="cpu")
    indices = model.base_mesh_vertex_indices.cpu()
    rows = torch.stack([weights[name][indices].to(torch.float64) for name in COCO17_NAMES])
    if (rows.sum(dim=1) <= 0).any():
        raise ValueError("this Anny topology drops every vertex of a COCO keypoint; choose another")
    return (rows / rows.sum(dim=1, keepdim=True)).to(torch.float32)


class AnnyBody(BodyModel):
    """Anny behind the :class:`~munet.body.base.BodyModel` interface.

    Args:
        topology: a watertight, single-component Anny topology (default ``anny-noeyes-notongue``,
            13,348 vertices; ``notoes_collapse10pc`` etc. are coarser).
        cache_dir: Anny's cache folder (see :func:`resolve_cache_dir`).
    """

    name = "anny"

    def __init__(self, topology: str = "anny-noeyes-notongue", cache_dir: str | os.PathLike | None = None):
        super().__init__()
        self.topology = topology
        self.model = load_anny(topology, cache_dir)
        self.model.requires_grad_(False)
        self.num_bones = int(self.model.bone_count)
        self.pose_dim = 3 * self.num_bones
        self.phenotype_labels = tuple(self.model.phenotype_labels)
        self.shape_dim = len(self.phenotype_labels)
        self.register_buffer("joint_regressor", coco17_regressor(self.model))
        self.register_buffer("faces", self.model.get_triangular_faces().to(torch.long).clone())

    def neutral_shape(self, batch_size: int = 1) -> torch.Tensor:
        """All phenotypes at 0.5: an average adult."""
        return torch.full((batch_size, self.shape_dim), 0.5, dtype=torch.float32)

    def bone_transforms(self, pose: torch.Tensor) -> torch.Tensor:
        """Anny's ``pose_parameters``: pose vectors ``(B, 3 J)`` (one axis-angle rotation per bone,
        radians, ``local-ref``) → ``(B, J, 4, 4)`` homogeneous rotations without translation."""
        batch = pose.shape[0]
        transforms = torch.zeros(batch, self.num_bones, 4, 4, dtype=pose.dtype, device=pose.device)
        transforms[..., :3, :3] = axis_angle_to_matrix(pose.reshape(batch, self.num_bones, 3))
        transforms[..., 3, 3] = 1.0
        return transforms

    def _vertices(self, pose: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        return self.model(pose_parameters=self.bone_transforms(pose), phenotype_kwargs=shape)["vertices"]

    def bone_labels(self) -> list[str]:
        """Names of the bones, in the order of the pose vector (3 values each)."""
        return list(self.model.bone_labels)

    def vertex_mirror(self) -> torch.Tensor:
        """``(V,)`` long: the index of each vertex's left/right mirror vertex, from Anny's template
        mesh, which is exactly symmetric through its YZ plane (bodies are symmetric only to about
        0.4 mm: see :mod:`munet.graph.symmetry`).

        Raises:
            ValueError: the template is not symmetric within 10 µm (a topology that is not).
        """
        return mirror_indices(self.model.template_vertices.detach().cpu(), axis=0, tolerance=1e-5)

    def bone_mirror(self) -> torch.Tensor:
        """``(J,)`` long: the index of each bone's left/right mirror bone (``upperarm01.L`` ↔
        ``upperarm01.R``; a centre bone is its own mirror), in pose-vector order.

        With it, :func:`munet.train.augment.mirror_pose` mirrors a pose: Anny's rig and rest mesh
        are symmetric through its YZ plane, so the mirror pose poses the mirror image of the body.

        Raises:
            ValueError: a ``.L``/``.R`` bone without its partner (a rig Anny does not ship).
        """
        labels = self.bone_labels()
        index = {label: i for i, label in enumerate(labels)}
        swap = {".L": ".R", ".R": ".L"}
        mirror = []
        for label in labels:
            partner = label[:-2] + swap[label[-2:]] if label[-2:] in swap else label
            if partner not in index:
                raise ValueError(f"the Anny bone {label!r} has no mirror bone {partner!r} in this rig")
            mirror.append(index[partner])
        return torch.tensor(mirror, dtype=torch.long)
