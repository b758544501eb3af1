"""SMPL / SMPL-H / SMPL-X through the ``smplx`` package, for users who hold the licensed files.

The model files are never downloaded: the user points ``body.model_dir`` at the folder they
received from the model's authors. Expected file names (``GENDER`` is ``NEUTRAL``, ``MALE`` or
``FEMALE``), directly in ``model_dir`` or in ``model_dir/<model_type>/``:

- ``smpl``:  ``SMPL_GENDER.pkl``
- ``smplh``: ``SMPLH_GENDER.pkl``
- ``smplx``: ``SMPLX_GENDER.npz``

Poses are ``(B, 3 + 3 * body_joints)`` axis-angle: the global orientation, then the body joints
(23 for SMPL, 21 for SMPL-H/X; hands, jaw and eyes rest). Shapes are the first ``num_betas`` betas.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from munet.body.base import BodyModel

MODEL_FILES = {"smpl": "SMPL_{}.pkl", "smplh": "SMPLH_{}.pkl", "smplx": "SMPLX_{}.npz"}

_SMPL_BODY_JOINTS = {
    # COCO name -> index into the SMPL/SMPL-H/SMPL-X skeleton (first 22 joints are shared).
    "left_shoulder": 16,
    "right_shoulder": 17,
    "left_elbow": 18,
    "right_elbow": 19,
    "left_wrist": 20,
    "right_wrist": 21,
    "left_hip": 1,
    "right_hip": 2,
    "left_knee": 4,
    "right_knee": 5,
    "left_ankle": 7,
    "right_ankle": 8,
}
_SMPL_FACE_VERTEX_KEYS = {
    "nose": "nose",
    "left_eye": "leye",
    "right_eye": "reye",
    "left_ear": "lear",
    "right_ear": "rear",
}


def find_model_file(model_dir: str | os.PathLike | None, model_type: str, gender: str) -> Path:
    """Locate the licensed model file, or explain exactly which file is expected where.

    Raises:
        ValueError: unknown ``model_type`` or ``gender``.
        FileNotFoundError: the folder or the file is missing.
    """
    if model_type not in MODEL_FILES:
        raise ValueError(f"body.model_type must be one of {sorted(MODEL_FILES)}, got {model_type!r}")
    if gender not in ("neutral", "male", "female"):
        raise ValueError(f"body.gender must be neutral, male or female, got {gender!r}")
    filename = MODEL_FILES[model_type].format(gender.upper())
    if not model_dir:
        raise FileNotFoundError(
            f"The {model_type} body backend needs body.model_dir: a folder holding {filename} "
            "(download it from the model's website after accepting its license)."
        )
    root = Path(model_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"body.model_dir {root} does not exist or is not a folder; it must hold {filename} "
            f"(or {model_type}/{filename})."
        )
    for candidate in (root / filename, root / model_type / filename):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"No {filename} in {root} or {root / model_type}: put the {model_type.upper()} model file "
        f"there (file names are case-sensitive), or set body.model_type/body.gender to match the "
        "file you have."
    )


class SMPLXBody(BodyModel):
    """SMPL-family model behind the :class:`~munet.body.base.BodyModel` interface.

    Args:
        model_dir: folder with the licensed model file (see :func:`find_model_file`).
        model_type: ``smpl``, ``smplh`` or ``smplx``.
        gender: ``neutral``, ``male`` or ``female``.
        num_betas: number of shape coefficients.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike | None,
        model_type: str = "smpl",
        gender: str = "neutral",
        num_betas: int = 10,
    ):
        super().__init__()
        import smplx
        from smplx.vertex_ids import vertex_ids

        path = find_model_file(model_dir, model_type, gender)
        self.name = model_type
        try:
            self.model = smplx.create(
                str(path), model_type=model_type, gender=gender, num_betas=num_betas,
                use_pca=False, batch_size=1,
            )
        except Exception as exc:  # a damaged or foreign file: say which and why
            raise ValueError(f"Could not load {path} as a {model_type} model: {exc}") from exc
        self.model.requires_grad_(False)
        self.body_joints = int(self.model.NUM_BODY_JOINTS)
        self.pose_dim = 3 + 3 * self.body_joints
        self.shape_dim = int(self.model.num_betas)
        num_vertices = int(self.model.v_template.shape[0])
        ids = vertex_ids["smplx" if model_type == "smplx" else "smplh"]
        j_regressor = self.model.J_regressor.to(torch.float32)
        rows = []
        for name in self.joint_names:
            if name in _SMPL_BODY_JOINTS:
                rows.append(j_regressor[_SMPL_BODY_JOINTS[name]])
            else:
                row = torch.zeros(num_vertices)
                row[ids[_SMPL_FACE_VERTEX_KEYS[name]]] = 1.0
                rows.append(row)
        self.register_buffer("joint_regressor", torch.stack(rows))
        self.register_buffer("faces", self.model.faces_tensor.to(torch.long).clone())

    def neutral_shape(self, batch_size: int = 1) -> torch.Tensor:
        """Zero betas: the mean shape."""
        return torch.zeros(batch_size, self.shape_dim)

    def _vertices(self, pose: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        batch = pose.shape[0]
        kwargs = {
            "betas": shape,
            "global_orient": pose[:, :3],
            "body_pose": pose[:, 3:],
            "transl": torch.zeros(batch, 3, dtype=pose.dtype, device=pose.device),
        }
        zeros = lambda n: torch.zeros(batch, n, dtype=pose.dtype, device=pose.device)  # noqa: E731
        if self.name in ("smplh", "smplx"):
            kwargs.update(left_hand_pose=zeros(45), right_hand_pose=zeros(45))
        if self.name == "smplx":
            kwargs.update(
                jaw_pose=zeros(3), leye_pose=zeros(3), reye_pose=zeros(3),
                expression=zeros(int(self.model.num_expression_coeffs)),
            )
        return self.model(**kwargs).vertices
