"""The mesh-graph hierarchy MuNet runs on, assembled from a configuration and a body model.

Three meshes of the same mean-shape, rest-pose (Anny's A-pose, SMPL's T-pose) body, all in the *camera orientation* (the
person upright and facing the camera: x right, y down, z forward) and centred on the pelvis:

- **fine**: the body model's mesh (Anny ``anny-noeyes-notongue``, 13,348 vertices, or SMPL's
  6,890), the output topology of the body branch;
- **coarse**: an Anny topology of the same body (``graph.coarse_topology``, default
  ``notoes_collapse10pc``, 1,229 vertices / 2,454 faces), the graph the body GCN deforms; with
  SMPL, SMPL's mesh itself (``graph.coarse_topology: fine``);
- **cloth**: the coarse graph midpoint-subdivided ``graph.cloth_subdivisions`` times (one
  subdivision: 4,910 vertices / 9,816 faces), the graph the clothed GCN deforms.

All three are closed, consistently oriented 2-manifolds. Sampling matrices connect them:
``down`` (coarse × fine) and ``up`` (fine × coarse) from :func:`munet.graph.load_or_build_hierarchy`
(cached on disk), and ``cloth_up`` (cloth × coarse) from :func:`munet.graph.subdivide`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from munet.body import BodyModel, pelvis
from munet.config import MuNetConfig
from munet.geometry import manifold_defects
from munet.graph import (
    MeshGraph,
    SamplingMatrices,
    load_or_build_hierarchy,
    sparse_bmm,
    sparse_matrix,
    subdivide,
)

ANNY_TO_CAMERA = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""Rotation taking Anny's frame (Z up, front −Y, left +X) to the camera orientation of a person
facing the camera (OpenCV: y down, z forward): ``p_camera = ANNY_TO_CAMERA @ p_anny``."""

SMPL_TO_CAMERA = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
"""The same for SMPL's frame (Y up, front +Z, left +X)."""

FINE_COARSE = "fine"
"""``graph.coarse_topology`` that makes the body mesh itself the coarse graph (the only choice for
the SMPL body: the other topologies are Anny's)."""

PART_NAMES: tuple[str, ...] = (
    "torso",
    "head",
    "left_upper_arm",
    "right_upper_arm",
    "left_forearm",
    "right_forearm",
    "left_hand",
    "right_hand",
    "left_thigh",
    "right_thigh",
    "left_shin",
    "right_shin",
    "left_foot",
    "right_foot",
)
"""Body parts of the per-vertex part labels (the person's left and right)."""

_BONE_PREFIX_TO_PART = {
    "root": "torso",
    "pelvis": "torso",
    "spine": "torso",
    "clavicle": "torso",
    "neck": "head",
    "head": "head",
    "eye": "head",
    "shoulder": "upper_arm",
    "upperarm": "upper_arm",
    "lowerarm": "forearm",
    "wrist": "hand",
    "finger": "hand",
    "metacarpal": "hand",
    "upperleg": "thigh",
    "lowerleg": "shin",
    "foot": "foot",
    "toe": "foot",
}


_SMPL_JOINT_TO_PART = {
    "pelvis": "torso",
    "spine1": "torso",
    "spine2": "torso",
    "spine3": "torso",
    "collar": "torso",
    "neck": "head",
    "head": "head",
    "shoulder": "upper_arm",
    "elbow": "forearm",
    "wrist": "hand",
    "hand": "hand",
    "hip": "thigh",
    "knee": "shin",
    "ankle": "foot",
    "foot": "foot",
}


def smpl_joint_part(joint: str) -> int:
    """Index in :data:`PART_NAMES` of the body part an SMPL joint (e.g. ``left_elbow``) moves."""
    side, _, stem = joint.partition("_") if joint.startswith(("left_", "right_")) else ("", "", joint)
    base = _SMPL_JOINT_TO_PART.get(stem)
    if base is None:
        raise ValueError(f"no body part is defined for the SMPL joint {joint!r}")
    return PART_NAMES.index(base if base in ("torso", "head") else f"{side}_{base}")


def bone_part(bone: str) -> int:
    """Index in :data:`PART_NAMES` of the body part an Anny bone (e.g. ``lowerarm01.L``) belongs to."""
    stem, _, side = bone.partition(".")
    prefix = stem.rstrip("0123456789-")
    base = _BONE_PREFIX_TO_PART.get(prefix)
    if base is None:
        raise ValueError(f"no body part is defined for the Anny bone {bone!r} (prefix {prefix!r})")
    if base in ("torso", "head"):
        return PART_NAMES.index(base)
    if side not in ("L", "R"):
        raise ValueError(f"the Anny bone {bone!r} should end in .L or .R")
    return PART_NAMES.index(f"{'left' if side == 'L' else 'right'}_{base}")


TEMPLATES_FORMAT = 1
"""Version of :meth:`Templates.to_tensors`' layout; bumped whenever it changes."""

GEOMETRY_RESOLUTION = 1e-6
"""Template positions are rounded to this (metres) after a float64 build, so that the few-ulp
differences between CPUs and thread counts never reach the stored geometry or its fingerprints."""


@dataclass(frozen=True, eq=False)
class Templates:
    """Everything fixed the network runs on (CPU tensors; see the module documentation).

    A trained model's checkpoint stores these tensors (:meth:`to_tensors`), and loading one never
    rebuilds them (:meth:`from_tensors`): a model trained on one machine runs unchanged on any
    other, whatever its thread count, CPU or body-model cache.

    Attributes:
        coarse: the coarse template graph; ``coarse.vertices`` ``(V_c, 3)`` is the mean-shape
            rest-pose body (metres, camera orientation, pelvis at the origin).
        fine_faces: ``(F, 3)`` long, the body model's faces.
        num_fine_vertices: ``V`` of the body model's mesh.
        sampling: ``down`` ``(V_c, V)`` and ``up`` ``(V, V_c)`` sparse matrices.
        cloth: the clothed graph (the coarse graph subdivided), same rest shape.
        cloth_up: sparse ``(V_cloth, V_c)``, coarse per-vertex features → cloth graph.
        coarse_parts: ``(V_c,)`` long part index (:data:`PART_NAMES`) of each coarse vertex.
        cloth_parts: ``(V_cloth,)`` long part index of each cloth vertex.
        joint_regressor: ``(17, V)`` float32 COCO-17 regressor of the body model's mesh.
        pose_dim, shape_dim: lengths of the body model's pose and shape vectors (for the optional
            parameter read-out).
        fine_mirror: ``(V,)`` long, the left/right mirror partner of each body-mesh vertex
            (horizontal-flip augmentation; ``AnnyBody.vertex_mirror``).
        bone_mirror: ``(pose_dim / 3,)`` long, the mirror partner of each bone of the pose vector
            (``.L`` ↔ ``.R``; central bones are their own; ``AnnyBody.bone_mirror``).
    """

    coarse: MeshGraph
    fine_faces: torch.Tensor
    num_fine_vertices: int
    sampling: SamplingMatrices
    cloth: MeshGraph
    cloth_up: torch.Tensor
    coarse_parts: torch.Tensor
    cloth_parts: torch.Tensor
    joint_regressor: torch.Tensor
    pose_dim: int
    shape_dim: int
    fine_mirror: torch.Tensor
    bone_mirror: torch.Tensor

    @property
    def num_parts(self) -> int:
        return len(PART_NAMES)

    def to_tensors(self) -> dict[str, Any]:
        """A plain mapping of tensors, ints and strings (``torch.load(weights_only=True)``-safe)
        from which :meth:`from_tensors` rebuilds these templates exactly."""
        out: dict[str, Any] = {
            "format": TEMPLATES_FORMAT,
            "coarse_vertices": self.coarse.vertices,
            "coarse_faces": self.coarse.faces,
            "fine_faces": self.fine_faces,
            "num_fine_vertices": self.num_fine_vertices,
            "cloth_vertices": self.cloth.vertices,
            "cloth_faces": self.cloth.faces,
            "coarse_parts": self.coarse_parts,
            "cloth_parts": self.cloth_parts,
            "joint_regressor": self.joint_regressor,
            "pose_dim": self.pose_dim,
            "shape_dim": self.shape_dim,
            "fine_mirror": self.fine_mirror,
            "bone_mirror": self.bone_mirror,
            "fine_fingerprint": self.sampling.fine_fingerprint,
            "coarse_fingerprint": self.sampling.coarse_fingerprint,
        }
        for name, matrix in (("down", self.sampling.down), ("up", self.sampling.up), ("cloth_up", self.cloth_up)):
            matrix = matrix.coalesce()
            out[f"{name}_indices"], out[f"{name}_values"] = matrix.indices(), matrix.values()
            out[f"{name}_shape"] = list(matrix.shape)
        return {k: v.detach().cpu().clone() if isinstance(v, torch.Tensor) else v for k, v in out.items()}

    @classmethod
    def from_tensors(cls, values: Mapping[str, Any]) -> Templates:
        """The templates saved by :meth:`to_tensors`.

        Raises:
            ValueError: the mapping is not a templates record of this format.
        """
        version = values.get("format")
        if version != TEMPLATES_FORMAT:
            raise ValueError(
                f"the stored network templates have format {version!r}, this MuNet reads format "
                f"{TEMPLATES_FORMAT}; re-export the model with the MuNet version that wrote it"
            )

        def sparse(name: str) -> torch.Tensor:
            try:
                return sparse_matrix(
                    values[f"{name}_indices"], values[f"{name}_values"], tuple(values[f"{name}_shape"]), check=True
                )
            except ValueError as exc:
                raise ValueError(f"the stored network templates hold an invalid {name} matrix: {exc}") from exc

        try:
            return cls(
                coarse=MeshGraph.from_arrays(values["coarse_vertices"], values["coarse_faces"]),
                fine_faces=values["fine_faces"],
                num_fine_vertices=int(values["num_fine_vertices"]),
                sampling=SamplingMatrices(
                    sparse("down"), sparse("up"), str(values["fine_fingerprint"]), str(values["coarse_fingerprint"])
                ),
                cloth=MeshGraph.from_arrays(values["cloth_vertices"], values["cloth_faces"]),
                cloth_up=sparse("cloth_up"),
                coarse_parts=values["coarse_parts"],
                cloth_parts=values["cloth_parts"],
                joint_regressor=values["joint_regressor"],
                pose_dim=int(values["pose_dim"]),
                shape_dim=int(values["shape_dim"]),
                fine_mirror=values["fine_mirror"],
                bone_mirror=values["bone_mirror"],
            )
        except KeyError as exc:
            raise ValueError(f"the stored network templates lack {exc}; the file is incomplete") from exc


@contextmanager
def _single_threaded() -> Iterator[None]:
    """Run torch on one intra-op thread (reductions then sum in one fixed order)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _to_camera(vertices: torch.Tensor, root: torch.Tensor, rotation: torch.Tensor = ANNY_TO_CAMERA) -> torch.Tensor:
    """Body-frame ``(V, 3)`` float64 → camera orientation (``rotation``, e.g.
    :data:`ANNY_TO_CAMERA`), centred on ``root`` ``(3,)`` (body frame), rounded to
    :data:`GEOMETRY_RESOLUTION` and returned as float32."""
    camera = (vertices - root) @ rotation.T.to(vertices.dtype)
    return (torch.round(camera / GEOMETRY_RESOLUTION) * GEOMETRY_RESOLUTION).to(torch.float32)


def _anny_graphs(config: MuNetConfig, body: BodyModel) -> tuple[MeshGraph, MeshGraph, torch.Tensor, Path]:
    """Anny's fine mesh, the coarse Anny topology ``graph.coarse_topology`` of the same rest body,
    the coarse vertices' parts (from the coarse model's bones) and the hierarchy cache folder."""
    # Imported here, as munet.body imports its backends: a network rebuilt from a checkpoint's
    # templates (munet.checkpoint.load) needs neither Anny nor its dependencies.
    from munet.body.anny_backend import load_anny, resolve_cache_dir

    coarse_model = load_anny(config.graph.coarse_topology, config.body.cache_dir)
    with _single_threaded(), torch.no_grad():
        rest = copy.deepcopy(body).to(torch.float64)()
        root = pelvis(rest.joints)[0]
        fine = MeshGraph.from_arrays(_to_camera(rest.vertices[0], root), body.faces.cpu())
        coarse_rest = copy.deepcopy(coarse_model).to(torch.float64)()["vertices"][0]
        coarse = MeshGraph.from_arrays(_to_camera(coarse_rest, root), coarse_model.get_triangular_faces())
    part_of_bone = torch.tensor([bone_part(b) for b in coarse_model.bone_labels])
    strongest = coarse_model.vertex_bone_weights.argmax(dim=1, keepdim=True)
    coarse_parts = part_of_bone[coarse_model.vertex_bone_indices.gather(1, strongest)[:, 0].cpu()]
    cache_dir = config.graph.cache_dir or Path(resolve_cache_dir(config.body.cache_dir)) / "munet_graph"
    return fine, coarse, coarse_parts, Path(cache_dir)


def _smpl_graphs(config: MuNetConfig, body: BodyModel) -> tuple[MeshGraph, MeshGraph, torch.Tensor, Path]:
    """SMPL's mean-shape T-pose mesh as both the fine mesh and the coarse graph
    (``graph.coarse_topology`` must be :data:`FINE_COARSE`), its vertices' parts (from the joint
    that moves each most) and the hierarchy cache folder (``graph.cache_dir``, default
    ``~/.cache/munet/graph``)."""
    if config.graph.coarse_topology != FINE_COARSE:
        raise ValueError(
            f"graph.coarse_topology {config.graph.coarse_topology!r} is an Anny topology; with the SMPL body "
            f"the coarse graph is SMPL's own mesh: set graph.coarse_topology: {FINE_COARSE} (and "
            "graph.cloth_subdivisions: 0 keeps the clothed graph at its 6,890 vertices)"
        )
    with _single_threaded(), torch.no_grad():
        rest = copy.deepcopy(body).to(torch.float64)()
        root = pelvis(rest.joints)[0]
        fine = MeshGraph.from_arrays(_to_camera(rest.vertices[0], root, SMPL_TO_CAMERA), body.faces.cpu())
    parts = torch.tensor([smpl_joint_part(joint) for joint in body.vertex_bones()])
    cache_dir = config.graph.cache_dir or Path.home() / ".cache" / "munet" / "graph"
    return fine, fine, parts, Path(cache_dir)


def build_templates(config: MuNetConfig, body: BodyModel) -> Templates:
    """Assemble the coarse / fine / cloth hierarchy for ``config`` and the fine ``body`` model.

    Anny: the coarse graph is the Anny topology ``graph.coarse_topology`` of the same body. SMPL
    (``body.backend: smplx``, ``model_type: smpl``): the coarse graph is SMPL's own closed mesh
    (``graph.coarse_topology: fine``; its T-pose is the template), so the body GCN runs on its
    6,890 vertices.

    Deterministic: the rest bodies are computed in float64 on one thread and rounded to
    :data:`GEOMETRY_RESOLUTION`, so every process, thread count and CPU builds the same arrays.
    The sampling matrices are read from (or built once into) ``graph.cache_dir``, default
    ``<Anny cache>/munet_graph`` (Anny) or ``~/.cache/munet/graph`` (SMPL). Building them takes a
    few seconds.

    Raises:
        ValueError: a body other than Anny or SMPL (SMPL-H/SMPL-X meshes are not closed), an
            Anny coarse topology with SMPL, or meshes that are not closed 2-manifolds.
    """
    name = getattr(body, "name", None)
    if name == "anny":
        fine, coarse, coarse_parts, cache_dir = _anny_graphs(config, body)
    elif name == "smpl":
        fine, coarse, coarse_parts, cache_dir = _smpl_graphs(config, body)
    else:
        raise ValueError(
            f"MuNet's graph hierarchy is built for the Anny and SMPL bodies; got {name!r} (SMPL-H and "
            "SMPL-X meshes are not closed surfaces: set body.model_type: smpl)"
        )
    for graph_name, graph in (("fine", fine), ("coarse", coarse)):
        defects = manifold_defects(graph.faces, graph.num_vertices)
        if defects:
            raise ValueError(f"the {graph_name} mesh is not a closed 2-manifold: {'; '.join(defects)}")
    sampling = load_or_build_hierarchy(fine, coarse, cache_dir)
    cloth, cloth_up = subdivide(coarse, config.graph.cloth_subdivisions)
    one_hot = torch.nn.functional.one_hot(coarse_parts, len(PART_NAMES)).float()
    cloth_parts = sparse_bmm(cloth_up, one_hot[None])[0].argmax(dim=1)
    return Templates(
        coarse=coarse,
        fine_faces=fine.faces,
        num_fine_vertices=fine.num_vertices,
        sampling=sampling,
        cloth=cloth,
        cloth_up=cloth_up,
        coarse_parts=coarse_parts,
        cloth_parts=cloth_parts,
        joint_regressor=body.joint_regressor.detach().cpu().to(torch.float32).clone(),
        pose_dim=int(body.pose_dim),
        shape_dim=int(body.shape_dim),
        fine_mirror=body.vertex_mirror(),
        bone_mirror=body.bone_mirror(),
    )
