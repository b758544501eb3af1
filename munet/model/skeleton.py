"""Skeleton-driven initial body: 2D joints lifted to 3D, and the template posed part by part.

Articulation learnt as free per-vertex displacements from a pooled image feature generalises
poorly to unseen people (it is learnt sample by sample). A 2D skeleton, on the other hand, is
learnt quickly from dense heatmaps (:mod:`munet.model.keypoints`), and lifting a 2D skeleton to 3D
is a small, well-posed regression (17 × 2 numbers in, 17 × 3 out). This module turns lifted joints
into a posed mesh with no learnt parameters, so the body GCN starts from an articulated body and
only refines it:

1. :class:`Lifter`: soft-argmax 2D joints (normalised crop coordinates) → root-relative 3D joints in
   the camera orientation (metres), as the template's rest joints plus a learnt change.
2. :func:`part_transforms`: one rigid transform per body part (:data:`PART_NAMES` of
   :mod:`munet.model.templates`): the torso and head turned as the frames their joints span (hips
   and shoulders; ears, eyes, nose and neck), about the pelvis and the neck; each limb segment by
   the torso's rotation followed by the shortest rotation (swing) that takes its rest bone to the
   lifted bone, about its proximal joint; hands and feet follow their forearm and shin.
3. :func:`pose_template`: every vertex moved by the transforms of the parts, blended by smooth
   per-vertex part weights (:func:`smooth_part_weights`), i.e. linear blend skinning.

Frames: the template and its rest joints are root-relative in the camera orientation of a person
facing the camera (x right, y down, z forward, metres); so are the lifted joints and the posed
vertices. The torso's rotation is the body's global orientation (template frame → camera).
"""

from __future__ import annotations

import torch
from torch import nn

from munet.body.joints import COCO17_NAMES, COCO17_PELVIS

_J = {name: index for index, name in enumerate(COCO17_NAMES)}

SEGMENTS: dict[str, tuple[int, int]] = {
    "left_upper_arm": (_J["left_shoulder"], _J["left_elbow"]),
    "right_upper_arm": (_J["right_shoulder"], _J["right_elbow"]),
    "left_forearm": (_J["left_elbow"], _J["left_wrist"]),
    "right_forearm": (_J["right_elbow"], _J["right_wrist"]),
    "left_hand": (_J["left_elbow"], _J["left_wrist"]),
    "right_hand": (_J["right_elbow"], _J["right_wrist"]),
    "left_thigh": (_J["left_hip"], _J["left_knee"]),
    "right_thigh": (_J["right_hip"], _J["right_knee"]),
    "left_shin": (_J["left_knee"], _J["left_ankle"]),
    "right_shin": (_J["right_knee"], _J["right_ankle"]),
    "left_foot": (_J["left_knee"], _J["left_ankle"]),
    "right_foot": (_J["right_knee"], _J["right_ankle"]),
}
"""Limb parts: the bone (proximal, distal joint) that turns them; hands and feet turn with their
forearm and shin."""

EPS = 1e-8


def frame(lateral: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Orthonormal frames ``(..., 3, 3)`` (columns: axes) from a lateral direction and a second,
    non-parallel direction (``(..., 3)`` each), by Gram–Schmidt: ``x`` along ``lateral``, ``y`` the
    part of ``second`` perpendicular to it, ``z = x × y``. Smooth wherever the two are not parallel."""
    x = lateral / lateral.norm(dim=-1, keepdim=True).clamp_min(EPS)
    y = second - (second * x).sum(-1, keepdim=True) * x
    y = y / y.norm(dim=-1, keepdim=True).clamp_min(EPS)
    return torch.stack([x, y, torch.linalg.cross(x, y)], dim=-1)


def _torso_frame(joints: torch.Tensor) -> torch.Tensor:
    """Frames of torsos ``(..., 17, 3)``: x from the left to the right hip and shoulder, y from the
    shoulders' midpoint down to the hips'."""
    lateral = joints[..., _J["right_hip"], :] - joints[..., _J["left_hip"], :]
    lateral = lateral + joints[..., _J["right_shoulder"], :] - joints[..., _J["left_shoulder"], :]
    shoulders = joints[..., [_J["left_shoulder"], _J["right_shoulder"]], :].mean(dim=-2)
    hips = joints[..., [_J["left_hip"], _J["right_hip"]], :].mean(dim=-2)
    return frame(lateral, hips - shoulders)


def _head_frame(joints: torch.Tensor) -> torch.Tensor:
    """Frames of heads ``(..., 17, 3)``: x from the left to the right ear and eye, y from the nose
    to the shoulders' midpoint."""
    lateral = joints[..., _J["right_ear"], :] - joints[..., _J["left_ear"], :]
    lateral = lateral + joints[..., _J["right_eye"], :] - joints[..., _J["left_eye"], :]
    shoulders = joints[..., [_J["left_shoulder"], _J["right_shoulder"]], :].mean(dim=-2)
    return frame(lateral, shoulders - joints[..., _J["nose"], :])


def swing(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The shortest rotation ``(B, 3, 3)`` taking the directions of ``a`` to those of ``b``
    (``(B, 3)`` each, any length; Rodrigues' formula, smooth except for opposite directions, where
    it turns by 180° about an axis perpendicular to ``a``)."""
    a = a / a.norm(dim=-1, keepdim=True).clamp_min(EPS)
    b = b / b.norm(dim=-1, keepdim=True).clamp_min(EPS)
    axis = torch.linalg.cross(a, b)
    cos = (a * b).sum(-1)
    # For nearly opposite directions, turn about an axis perpendicular to a.
    e_x, e_y = a.new_tensor([1.0, 0.0, 0.0]).expand_as(a), a.new_tensor([0.0, 1.0, 0.0]).expand_as(a)
    fallback = torch.linalg.cross(a, e_x)
    fallback = torch.where(fallback.norm(dim=-1, keepdim=True) < 1e-3, torch.linalg.cross(a, e_y), fallback)
    opposite = cos < -1 + 1e-6
    skew = _skew(axis)
    identity = torch.eye(3, dtype=a.dtype, device=a.device).expand(a.shape[0], 3, 3)
    rodrigues = identity + skew + skew @ skew / (1 + cos).clamp_min(EPS)[:, None, None]
    n = fallback / fallback.norm(dim=-1, keepdim=True).clamp_min(EPS)
    half_turn = 2 * n[:, :, None] * n[:, None, :] - identity
    return torch.where(opposite[:, None, None], half_turn, rodrigues)


def _skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrices ``(B, 3, 3)`` of vectors ``(B, 3)``."""
    zero = torch.zeros_like(v[:, 0])
    x, y, z = v.unbind(-1)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).view(-1, 3, 3)


def part_transforms(
    rest_joints: torch.Tensor, joints: torch.Tensor, part_names: tuple[str, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """One rigid transform per part taking the rest body to the one of ``joints``.

    Args:
        rest_joints: ``(17, 3)`` the template's root-relative COCO-17 joints.
        joints: ``(B, 17, 3)`` root-relative target joints (same frame).
        part_names: the parts, in the order of the part weights (``torso`` and ``head`` fitted
            rigidly, the others in :data:`SEGMENTS`).

    Returns:
        ``rotations`` ``(B, P, 3, 3)`` and ``translations`` ``(B, P, 3)``: a rest point ``x`` of
        part ``p`` moves to ``rotations[:, p] @ x + translations[:, p]``.
    """
    torso_r = _torso_frame(joints) @ _torso_frame(rest_joints).T
    head_r = _head_frame(joints) @ _head_frame(rest_joints).T
    torso_t = joints[:, list(COCO17_PELVIS)].mean(1) - torso_r @ rest_joints[list(COCO17_PELVIS)].mean(0)
    neck = [_J["left_shoulder"], _J["right_shoulder"]]
    head_t = joints[:, neck].mean(1) - head_r @ rest_joints[neck].mean(0)
    rotations, translations = [], []
    for name in part_names:
        if name == "torso":
            r, t = torso_r, torso_t
        elif name == "head":
            r, t = head_r, head_t
        else:
            proximal, distal = SEGMENTS[name]
            rest_bone = rest_joints[distal] - rest_joints[proximal]
            turned = torso_r @ rest_bone
            r = swing(turned, joints[:, distal] - joints[:, proximal]) @ torso_r
            t = joints[:, proximal] - (r @ rest_joints[proximal])
        rotations.append(r)
        translations.append(t)
    return torch.stack(rotations, dim=1), torch.stack(translations, dim=1)


def smooth_part_weights(parts: torch.Tensor, adjacency: torch.Tensor, num_parts: int, steps: int) -> torch.Tensor:
    """Per-vertex part weights ``(V, P)``: the one-hot part labels ``parts`` ``(V,)`` averaged over
    graph neighbourhoods ``steps`` times (``adjacency``: sparse row-normalised ``(V, V)`` with self
    loops), so that the parts blend across a band of about ``steps`` edges at each joint. Rows sum to 1."""
    weights = torch.nn.functional.one_hot(parts, num_parts).to(torch.float32)
    for _ in range(steps):
        weights = torch.sparse.mm(adjacency, weights)
    return weights / weights.sum(dim=1, keepdim=True)


def pose_template(
    template: torch.Tensor, weights: torch.Tensor, rotations: torch.Tensor, translations: torch.Tensor
) -> torch.Tensor:
    """Linear blend skinning of the rest template ``(V, 3)`` by part transforms (``(B, P, 3, 3)``,
    ``(B, P, 3)``, :func:`part_transforms`) with weights ``(V, P)``: ``(B, V, 3)``."""
    moved = torch.einsum("bpij,vj->bvpi", rotations, template) + translations[:, None]
    return (weights[None, :, :, None] * moved).sum(dim=2)


class Lifter(nn.Module):
    """2D joints → root-relative 3D joints (a residual MLP, as in 2D-to-3D lifting baselines).

    The input is centred on the 2D pelvis and divided by its RMS spread, so the lifter sees the
    skeleton's shape only; the output is the template's rest joints plus a learnt change
    (zero-initialised: the untrained lifter returns the rest pose).

    Args:
        rest_joints: ``(17, 3)`` the template's root-relative joints, camera orientation, metres.
        hidden: width of the hidden layers.
        blocks: residual blocks.
        dropout: dropout probability in the blocks.
    """

    def __init__(self, rest_joints: torch.Tensor, hidden: int = 512, blocks: int = 2, dropout: float = 0.1):
        super().__init__()
        joints = rest_joints.shape[0]
        self.register_buffer("rest_joints", rest_joints.clone(), persistent=False)
        self.inp = nn.Linear(2 * joints, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, hidden),
            )
            for _ in range(blocks)
        )
        self.out = nn.Linear(hidden, 3 * joints)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, joints_2d: torch.Tensor) -> torch.Tensor:
        """``(B, 17, 2)`` normalised image coordinates → ``(B, 17, 3)`` root-relative joints, metres."""
        centred = joints_2d - joints_2d[:, list(COCO17_PELVIS)].mean(dim=1, keepdim=True)
        spread = centred.square().sum(-1).mean(-1).sqrt().clamp_min(1e-4)
        x = self.inp((centred / spread[:, None, None]).flatten(1))
        for block in self.blocks:
            x = x + block(x)
        out = self.rest_joints + self.out(torch.relu(x)).view(-1, *self.rest_joints.shape)
        return out - out[:, list(COCO17_PELVIS)].mean(dim=1, keepdim=True)
