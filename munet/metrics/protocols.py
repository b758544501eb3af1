"""The standard body-benchmark protocols of HMR papers (SPIN, 4D-Humans): Human3.6M P2, 3DPW and
MPI-INF-3DHP, as pure tensor functions.

Every protocol scores joints regressed from the predicted SMPL mesh by the "Human3.6M joint
regressor" (``J_regressor_h36m.npy``, ``(17, 6890)``), which the user supplies
(:func:`load_joint_regressor`). The 17 regressed joints are then reordered into the protocol's
joint set: the 14 LSP joints for Human3.6M P2 and 3DPW, the 17 joints of the MPI-INF-3DHP test
set for 3DHP. All inputs are in metres (camera frame, or any frame shared by prediction and ground
truth); errors come back per sample, ``(B,)``, in millimetres, PCK and AUC in percent.

>>> regressor = load_joint_regressor("J_regressor_h36m.npy", num_vertices=6890)  # (17, 6890)
>>> protocol = PROTOCOLS["3dpw"]
>>> pred = protocol.joints_from_mesh(pred_vertices, regressor)  # (B, 14, 3)
>>> gt = protocol.joints_from_mesh(gt_vertices, regressor)      # 3DPW: gendered SMPL ground truth
>>> protocol.errors(pred, gt)                                   # {mpjpe_mm, pa_mpjpe_mm}: (B,) each

Joint order of the regressor. The Human3.6M challenge (and mmpose, VideoPose3D) lists the right
leg first (pelvis, right hip, right knee, right ankle, left hip, ...). The regressor file that HMR
papers use does not: SPIN builds its Human3.6M ground truth from the raw 32-joint skeleton in the
order raw ``[0|11, 6, 7, 8, 1, 2, 3, ...]``, i.e. the *left* leg (raw 6-8) first, and scores the
regressed joints against it with the same indices (``H36M_TO_J14 = [6, 5, 4, 1, 2, 3, 16, 15, 14,
11, 12, 13, 8, 10]``); mmhuman3d and ExPose name the regressor's joints the same way
(``H36M_KEYPOINTS``: pelvis, left hip, left knee, left ankle, right hip, ...). The arms are in the
challenge order (left arm 11-13, right arm 14-16). :data:`H36M17_NAMES` spells out this order, and
the index maps below are derived from it. Ground truth given as joints (``lsp14``, ``mpi3dhp17``)
must follow the orders of :data:`LSP14_NAMES` / :data:`MPI3DHP17_NAMES` by anatomy.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from munet.metrics._checks import check_finite, check_points, check_same_shape
from munet.metrics.joints import mpjpe, pa_mpjpe

SMPL_NUM_VERTICES = 6890
"""Vertex count of the SMPL mesh, the only mesh the Human3.6M regressor applies to."""

H36M17_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_hip",
    "right_knee",
    "right_ankle",
    "spine",
    "thorax",
    "neck_nose",
    "head_top",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
)
"""The 17 joints of ``J_regressor_h36m.npy``, in its row order (left leg first, see the module
docstring). ``thorax`` (8) is the joint LSP calls "neck"; ``head_top`` (10) is LSP's "head top";
``neck_nose`` (9) is the joint 3DHP calls "head"."""

LSP14_NAMES: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "neck",
    "head_top",
)
"""The 14 LSP joints, in LSP order (the ``lsp14`` joint set)."""

MPI3DHP17_NAMES: tuple[str, ...] = (
    "head_top",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "spine",
    "head",
)
"""The 17 joints of the MPI-INF-3DHP test set (``univ_annot3``), in its order (the ``mpi3dhp17``
joint set)."""

JOINT_SETS: dict[str, tuple[str, ...]] = {"lsp14": LSP14_NAMES, "mpi3dhp17": MPI3DHP17_NAMES}
"""Ground-truth joint sets of the protocols, by name: the joint names in order."""

# LSP-14 from the regressor's 17 joints, by name (left: LSP joint, right: regressor row):
#   right ankle 6, right knee 5, right hip 4, left hip 1, left knee 2, left ankle 3,
#   right wrist 16, right elbow 15, right shoulder 14, left shoulder 11, left elbow 12,
#   left wrist 13, neck <- thorax 8, head top 10.
# Identical to SPIN's constants.H36M_TO_J14 (= H36M_TO_J17[:14]).
H36M_TO_LSP14: tuple[int, ...] = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)
"""Regressor rows (:data:`H36M17_NAMES`) that give the 14 LSP joints (:data:`LSP14_NAMES`)."""

# MPI-INF-3DHP-17 from the regressor's 17 joints, by name:
#   head top 10, neck <- thorax 8, right arm 14 15 16, left arm 11 12 13, right leg 4 5 6,
#   left leg 1 2 3, pelvis 0, spine 7, head <- neck/nose 9.
# The inverse of the order SPIN reads the 3DHP test joints in (datasets/preprocess/mpi_inf_3dhp.py,
# joints17_idx = [14, 11, 12, 13, 8, 9, 10, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4], 3DHP index per
# regressor row), so that 3DHP "head" pairs with row 9 and "head top" with row 10 as in SPIN.
H36M_TO_MPI3DHP17: tuple[int, ...] = (10, 8, 14, 15, 16, 11, 12, 13, 4, 5, 6, 1, 2, 3, 0, 7, 9)
"""Regressor rows (:data:`H36M17_NAMES`) that give the 17 3DHP joints (:data:`MPI3DHP17_NAMES`)."""

LSP14_PELVIS: tuple[int, int] = (2, 3)
"""LSP-14 indices (right hip, left hip) whose midpoint is the root for MPJPE."""

MPI3DHP17_ROOT = 14
"""MPI-INF-3DHP-17 index of the pelvis, the root for MPJPE and PCK."""

MPI3DHP_PCK_JOINTS: tuple[int, ...] = tuple(range(14))
"""3DHP joints that PCK and AUC count: head top to left ankle (0-13); pelvis, spine and head are
left out (see :func:`mpi3dhp_errors`)."""

PCK_THRESHOLD_MM = 150.0
"""3DHP PCK threshold, millimetres."""

AUC_THRESHOLDS_MM: tuple[float, ...] = tuple(float(t) for t in range(0, 151, 5))
"""The 31 thresholds 0, 5, ..., 150 mm whose mean PCK is the 3DHP AUC."""

_M_TO_MM = 1000.0


def load_joint_regressor(path: str | Path, num_vertices: int) -> torch.Tensor:
    """Read the Human3.6M joint regressor (``J_regressor_h36m.npy``) and check it fits the mesh.

    Args:
        path: a ``.npy`` file holding one float array ``(17, V)`` (read with ``allow_pickle=False``),
            or a ``.npz`` file holding exactly one such array.
        num_vertices: vertex count ``V`` of the mesh the model predicts (6890 for SMPL).

    Returns:
        ``(17, V)`` float32 CPU tensor; row ``j`` holds the vertex weights of joint ``j`` of
        :data:`H36M17_NAMES`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file cannot be read as a numeric array, is not 2-D, has a row count other
            than 17 or a column count other than ``num_vertices``, or holds NaN/inf. Every message
            names the file and says what was expected.
    """
    path = Path(path)
    expected = f"a float array of shape (17, {num_vertices}) (the Human3.6M joint regressor of SMPL)"
    if not path.is_file():
        raise FileNotFoundError(f"joint regressor {path}: no such file; expected a .npy holding {expected}")
    array = _read_array(path, expected)
    if array.dtype.kind not in "fiu":
        raise ValueError(f"joint regressor {path}: holds an array of dtype {array.dtype}; expected {expected}")
    if array.ndim != 2:
        raise ValueError(f"joint regressor {path}: array of shape {array.shape} is not 2-D; expected {expected}")
    if array.shape[0] != len(H36M17_NAMES):
        raise ValueError(f"joint regressor {path}: {array.shape[0]} rows (one per joint), not 17; expected {expected}")
    if array.shape[1] != num_vertices:
        hint = ""
        if array.shape[1] == SMPL_NUM_VERTICES:
            hint = (
                f": this model predicts a mesh of {num_vertices} vertices; the Human3.6M regressor needs the "
                f"SMPL mesh ({SMPL_NUM_VERTICES}): train with body.backend=smplx body.model_type=smpl"
            )
        raise ValueError(
            f"joint regressor {path}: {array.shape[1]} columns (mesh vertices), expected {num_vertices}{hint}"
        )
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ValueError(f"joint regressor {path}: {bad} NaN/inf value(s); expected {expected}")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _read_array(path: Path, expected: str) -> np.ndarray:
    """Load the single array of a ``.npy`` or ``.npz`` file without unpickling anything."""
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise ValueError(
            f"joint regressor {path}: unknown file type {path.suffix!r}; expected a .npy holding {expected}"
        )
    try:
        loaded = np.load(path, allow_pickle=False)
        if suffix == ".npy":
            if not isinstance(loaded, np.ndarray):
                raise ValueError("not a single .npy array")
            return loaded
        with loaded:
            names = list(loaded.files)
            if len(names) != 1:
                raise ValueError(f"holds {len(names)} arrays {names}, expected exactly one")
            return loaded[names[0]]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"joint regressor {path}: cannot be read ({error}); expected {expected}, stored without pickled objects"
        ) from error


def regress_h36m(vertices: torch.Tensor, regressor: torch.Tensor) -> torch.Tensor:
    """The 17 Human3.6M joints of each mesh: ``joints[b, j] = sum_v regressor[j, v] vertices[b, v]``.

    Args:
        vertices: ``(B, V, 3)`` SMPL mesh vertices, metres, any frame.
        regressor: ``(17, V)`` joint regressor (:func:`load_joint_regressor`); moved to the dtype
            and device of ``vertices``.

    Returns:
        ``(B, 17, 3)`` joints in the order of :data:`H36M17_NAMES`, metres, same frame.

    Raises:
        ValueError: wrong shapes (including a regressor for another vertex count) or NaN/inf.
    """
    check_points("vertices", vertices, "(B, V, 3)")
    if not isinstance(regressor, torch.Tensor) or regressor.ndim != 2 or regressor.shape[0] != len(H36M17_NAMES):
        shape = tuple(regressor.shape) if isinstance(regressor, torch.Tensor) else type(regressor).__name__
        raise ValueError(f"regressor must be a tensor of shape (17, V), got {shape}")
    if regressor.shape[1] != vertices.shape[1]:
        raise ValueError(
            f"regressor has {regressor.shape[1]} columns but the mesh has {vertices.shape[1]} vertices; "
            f"the Human3.6M regressor needs the SMPL mesh ({SMPL_NUM_VERTICES} vertices)"
        )
    check_finite("regressor", regressor)
    weights = regressor.to(device=vertices.device, dtype=vertices.dtype)
    return torch.einsum("jv,bvc->bjc", weights, vertices)


def lsp14_from_h36m(joints: torch.Tensor) -> torch.Tensor:
    """The 14 LSP joints (:data:`LSP14_NAMES`) out of the 17 regressed ones.

    Args:
        joints: ``(B, 17, 3)`` joints in the order of :data:`H36M17_NAMES`, any unit and frame.

    Returns:
        ``(B, 14, 3)``, same unit and frame.
    """
    return _select("joints", joints, len(H36M17_NAMES), H36M_TO_LSP14)


def mpi17_from_h36m(joints: torch.Tensor) -> torch.Tensor:
    """The 17 MPI-INF-3DHP test joints (:data:`MPI3DHP17_NAMES`) out of the 17 regressed ones.

    Args:
        joints: ``(B, 17, 3)`` joints in the order of :data:`H36M17_NAMES`, any unit and frame.

    Returns:
        ``(B, 17, 3)`` in 3DHP order, same unit and frame.
    """
    return _select("joints", joints, len(H36M17_NAMES), H36M_TO_MPI3DHP17)


def lsp14_errors(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """Human3.6M P2 / 3DPW errors on the 14 LSP joints.

    Args:
        pred: ``(B, 14, 3)`` predicted joints (:data:`LSP14_NAMES`), metres.
        gt: ``(B, 14, 3)`` ground-truth joints, metres.

    Returns:
        ``mpjpe_mm``: ``(B,)`` mean joint error after aligning both pelvises, the midpoint of the
        hips (:data:`LSP14_PELVIS`; SPIN aligns on the regressor's pelvis row instead, which moves
        results by a few mm); ``pa_mpjpe_mm``: ``(B,)`` mean joint error after the similarity
        Procrustes alignment of ``pred`` onto ``gt``. Both in millimetres.
    """
    _check_joints(pred, gt, len(LSP14_NAMES))
    return {"mpjpe_mm": mpjpe(pred, gt, root=LSP14_PELVIS), "pa_mpjpe_mm": pa_mpjpe(pred, gt)}


def mpi3dhp_errors(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """MPI-INF-3DHP errors after aligning the pelvises (index :data:`MPI3DHP17_ROOT`).

    PCK and AUC follow the 3DHP test-set script (``mpii_compute_3d_pck.m``): a joint counts as
    correct when its error is strictly below the threshold, PCK uses 150 mm and AUC is the mean
    PCK over the 31 thresholds 0, 5, ..., 150 mm (:data:`AUC_THRESHOLDS_MM`; the 0 mm term is
    always 0). They count the 14 joints head top to left ankle (:data:`MPI3DHP_PCK_JOINTS`), as the
    usual HMR evaluation does: the pelvis, spine and head are left out (the pelvis is exact after
    root alignment). The script's default joint groups also count those three, which raises PCK a
    little; results are not comparable across the two choices.

    Args:
        pred: ``(B, 17, 3)`` predicted joints (:data:`MPI3DHP17_NAMES`), metres.
        gt: ``(B, 17, 3)`` ground-truth joints (``univ_annot3``), metres.

    Returns:
        ``mpjpe_mm``: ``(B,)`` mean error over all 17 joints, mm; ``pa_mpjpe_mm``: ``(B,)`` the same
        after similarity Procrustes, mm; ``pck150``: ``(B,)`` percent (0-100) of the 14 joints
        within 150 mm; ``auc``: ``(B,)`` percent (0-100). Each sample has the same joint count, so
        the batch mean of ``pck150``/``auc`` is the dataset's joint-level PCK/AUC.
    """
    _check_joints(pred, gt, len(MPI3DHP17_NAMES))
    pred_c = pred - pred[:, MPI3DHP17_ROOT : MPI3DHP17_ROOT + 1]
    gt_c = gt - gt[:, MPI3DHP17_ROOT : MPI3DHP17_ROOT + 1]
    errors_mm = (pred_c - gt_c).norm(dim=-1)[:, list(MPI3DHP_PCK_JOINTS)] * _M_TO_MM  # (B, 14)
    thresholds = torch.tensor(AUC_THRESHOLDS_MM, dtype=errors_mm.dtype, device=errors_mm.device)
    correct = (errors_mm[:, :, None] < thresholds).to(errors_mm.dtype)  # (B, 14, 31)
    pck150 = (errors_mm < PCK_THRESHOLD_MM).to(errors_mm.dtype).mean(dim=1) * 100.0
    return {
        "mpjpe_mm": mpjpe(pred, gt, root=MPI3DHP17_ROOT),
        "pa_mpjpe_mm": pa_mpjpe(pred, gt),
        "pck150": pck150,
        "auc": correct.mean(dim=(1, 2)) * 100.0,
    }


def lsp14_from_mesh(vertices: torch.Tensor, regressor: torch.Tensor) -> torch.Tensor:
    """LSP-14 joints ``(B, 14, 3)`` of SMPL meshes ``(B, V, 3)`` through the regressor ``(17, V)``,
    metres in and out."""
    return lsp14_from_h36m(regress_h36m(vertices, regressor))


def mpi17_from_mesh(vertices: torch.Tensor, regressor: torch.Tensor) -> torch.Tensor:
    """MPI-INF-3DHP-17 joints ``(B, 17, 3)`` of SMPL meshes ``(B, V, 3)`` through the regressor
    ``(17, V)``, metres in and out."""
    return mpi17_from_h36m(regress_h36m(vertices, regressor))


@dataclass(frozen=True)
class Protocol:
    """One benchmark protocol: which joints it scores, on which frames, and how."""

    name: str
    """Registry key, e.g. ``"h36m-p2"``."""
    joint_set: str
    """Ground-truth joint set, a key of :data:`JOINT_SETS` (``lsp14`` or ``mpi3dhp17``)."""
    scored_joints: tuple[int, ...]
    """Indices into the joint set that the MPJPE and PA-MPJPE average (PCK/AUC: see ``errors``)."""
    gt_from_mesh: bool
    """True when the ground truth is an SMPL mesh to pass through ``joints_from_mesh`` like the
    prediction (3DPW), False when it comes as joints of ``joint_set``."""
    frames: str
    """One line on the frame subset and rules, for reports."""
    joints_from_mesh: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    """``(vertices (B, V, 3), regressor (17, V)) -> joints (B, J, 3)`` of ``joint_set``, metres."""
    errors: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
    """``(pred (B, J, 3), gt (B, J, 3)) -> {metric: (B,)}``; inputs metres, errors mm, PCK/AUC %."""

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Names of the ground-truth joint set, in order."""
        return JOINT_SETS[self.joint_set]


PROTOCOLS: dict[str, Protocol] = {
    "h36m-p2": Protocol(
        name="h36m-p2",
        joint_set="lsp14",
        scored_joints=tuple(range(len(LSP14_NAMES))),
        gt_from_mesh=False,
        frames="Human3.6M protocol 2: subjects S9 and S11, every 5th frame, frontal camera 60457274",
        joints_from_mesh=lsp14_from_mesh,
        errors=lsp14_errors,
    ),
    "3dpw": Protocol(
        name="3dpw",
        joint_set="lsp14",
        scored_joints=tuple(range(len(LSP14_NAMES))),
        gt_from_mesh=True,
        frames="3DPW test split: frames with campose_valid and a non-zero 2D pose; "
        "ground truth = gendered SMPL mesh through the same regressor",
        joints_from_mesh=lsp14_from_mesh,
        errors=lsp14_errors,
    ),
    "3dhp": Protocol(
        name="3dhp",
        joint_set="mpi3dhp17",
        scored_joints=tuple(range(len(MPI3DHP17_NAMES))),
        gt_from_mesh=False,
        frames="MPI-INF-3DHP test set TS1-TS6: valid frames, univ_annot3 joints; "
        "PCK@150mm/AUC on 14 joints (no pelvis, spine, head)",
        joints_from_mesh=mpi17_from_mesh,
        errors=mpi3dhp_errors,
    ),
}
"""The protocols by name: ``h36m-p2``, ``3dpw``, ``3dhp``."""


def _select(name: str, joints: torch.Tensor, num_joints: int, index: tuple[int, ...]) -> torch.Tensor:
    """Check ``joints`` is ``(B, num_joints, 3)`` and return ``joints[:, index]``."""
    check_points(name, joints, f"(B, {num_joints}, 3)")
    if joints.shape[1] != num_joints:
        raise ValueError(f"{name} must have shape (B, {num_joints}, 3), got {tuple(joints.shape)}")
    return joints[:, list(index)]


def _check_joints(pred: torch.Tensor, gt: torch.Tensor, num_joints: int) -> None:
    """Check ``pred`` and ``gt`` are finite ``(B, num_joints, 3)`` tensors of one shape."""
    layout = f"(B, {num_joints}, 3)"
    check_points("pred", pred, layout)
    check_points("gt", gt, layout)
    check_same_shape("pred", pred, "gt", gt)
    if pred.shape[1] != num_joints:
        raise ValueError(f"pred and gt must have shape {layout}, got {tuple(pred.shape)}")
