"""SMPL / SMPL-H / SMPL-X through the ``smplx`` package, for users who hold the licensed files.

The model files are never downloaded: the user points ``body.model_dir`` at the folder they
received from the model's authors. Expected file names (``GENDER`` is ``NEUTRAL``, ``MALE`` or
``FEMALE``), directly in ``model_dir`` or in ``model_dir/<model_type>/``, ``.npz`` preferred:

- ``smpl``:  ``SMPL_GENDER.npz`` or ``SMPL_GENDER.pkl``
- ``smplh``: ``SMPLH_GENDER.npz`` or ``SMPLH_GENDER.pkl``
- ``smplx``: ``SMPLX_GENDER.npz`` or ``SMPLX_GENDER.pkl``

No model file is unpickled by ``pickle`` (which runs whatever code a file holds): this module reads
the arrays itself (:func:`read_model_file`) and hands ``smplx`` plain arrays. A ``.pkl`` is read by
a restricted unpickler that admits only numpy arrays and dtypes, scipy sparse matrices and plain
Python values, and refuses anything else with the class it met (the original SMPL files hold
``chumpy`` objects: convert such a file once with ``python -m munet.body convert FILE.pkl
--trust-pickle``, see :func:`convert_to_npz`). An ``.npz`` is read without pickle; its object
members (e.g. SMPL-X's ``joint2num``, unused) are skipped.

Poses are ``(B, 3 + 3 * body_joints)`` axis-angle: the global orientation, then the body joints
(23 for SMPL, 21 for SMPL-H/X; hands, jaw and eyes rest). Shapes are the first ``num_betas`` betas.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from munet.body.base import BodyModel
from munet.graph.symmetry import mirror_indices
from munet.safe_pickle import UnsafePickleError, load_restricted

MODEL_FILES = {
    "smpl": ("SMPL_{}.npz", "SMPL_{}.pkl"),
    "smplh": ("SMPLH_{}.npz", "SMPLH_{}.pkl"),
    "smplx": ("SMPLX_{}.npz", "SMPLX_{}.pkl"),
}
"""The model file names each type accepts, in order of preference (``{}`` is the gender)."""

SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
)
"""SMPL's 24 joints in the order of its pose vector (SMPL-H/SMPL-X share the first 22)."""

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
    filenames = [name.format(gender.upper()) for name in MODEL_FILES[model_type]]
    expected = " or ".join(filenames)
    if not model_dir:
        raise FileNotFoundError(
            f"The {model_type} body backend needs body.model_dir: a folder holding {expected} "
            "(download it from the model's website after accepting its license)."
        )
    root = Path(model_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"body.model_dir {root} does not exist or is not a folder; it must hold {expected} "
            f"(or the same in {model_type}/)."
        )
    for filename in filenames:
        for candidate in (root / filename, root / model_type / filename):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        f"No {expected} in {root} or {root / model_type}: put the {model_type.upper()} model file "
        f"there (file names are case-sensitive), or set body.model_type/body.gender to match the "
        "file you have."
    )


def _pickle_advice(path: Path) -> str:
    """What to do with a refused SMPL-family ``.pkl`` (the original files hold ``chumpy`` objects)."""
    return (
        f"Convert the model to .npz (plain arrays): `python -m munet.body convert {path} --trust-pickle` writes "
        f"{path.with_suffix('.npz').name} beside it, which is then used instead (run that only for a file you "
        "got from the model's authors: it unpickles the file, and chumpy objects need the chumpy package "
        "installed)."
    )


def _plain_arrays(data: Any, path: Path, array: Callable[[Any], Any] = lambda value: value) -> dict[str, np.ndarray]:
    """The numeric arrays of an unpickled model (scipy sparse matrices made dense); other members
    (strings, object arrays) are dropped. ``array`` first turns a value into an array-like (for
    chumpy objects)."""
    import scipy.sparse

    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a {type(data).__name__}, not the dictionary of arrays of an SMPL-family model")
    arrays = {}
    for key, value in data.items():
        value = array(value)
        if scipy.sparse.issparse(value):
            value = value.toarray()
        if isinstance(key, str) and isinstance(value, (np.ndarray, np.generic, int, float)):
            value = np.asarray(value)
            if value.dtype.kind in "biuf":
                arrays[key] = value
    return arrays


def read_model_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The numeric arrays of an SMPL-family model file, read without running code from it.

    A ``.pkl`` goes through the restricted unpickler (numpy arrays and dtypes, scipy sparse
    matrices and plain Python values only; sparse matrices come back dense); an ``.npz`` is read
    with ``allow_pickle=False`` (object members are skipped). Non-numeric members are dropped.

    Raises:
        UnsafePickleError: the ``.pkl`` holds anything else (the message names the class refused
            and how to convert the file to ``.npz``).
        ValueError: the file cannot be read as a model of arrays (damaged, or another format).
    """
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as members:
                data = {}
                for key in members.files:
                    try:
                        data[key] = members[key]
                    except ValueError:  # an object array: it would need pickle, and smplx never reads one
                        continue
        else:
            data = load_restricted(path, sparse=True, advice=_pickle_advice(path))
    except UnsafePickleError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: say which and why
        raise ValueError(f"Could not read {path} as an SMPL-family model file: {type(exc).__name__}: {exc}") from exc
    return _plain_arrays(data, path)


def convert_to_npz(
    source: str | os.PathLike, target: str | os.PathLike | None = None, trust_pickle: bool = False
) -> Path:
    """Write the numeric arrays of model file ``source`` to ``target`` (default: ``source`` with the
    suffix ``.npz``), the form this backend reads without any unpickling.

    Args:
        trust_pickle: unpickle ``source`` with the unrestricted ``pickle`` module, which runs any
            code the file holds: only for a file from the model's authors, e.g. the original SMPL
            files, which hold ``chumpy`` objects (then ``chumpy`` must be installed). Without it the
            file is read by :func:`read_model_file`.

    Returns:
        ``target``.

    Raises:
        UnsafePickleError: without ``trust_pickle``, a ``.pkl`` that holds other objects.
        ValueError: the file cannot be read as a model, or ``target`` is ``source``.
    """
    source = Path(source)
    target = source.with_suffix(".npz") if target is None else Path(target)
    if target.resolve() == source.resolve():
        raise ValueError(f"convert {source} into another file than itself")
    if trust_pickle and source.suffix != ".npz":
        with open(source, "rb") as handle:
            data = pickle.load(handle, encoding="latin1")  # noqa: S301 - the user vouched for this file
        arrays = _plain_arrays(data, source, lambda value: getattr(value, "r", value))  # chumpy: .r is its value
    else:
        arrays = read_model_file(source)
    with open(target, "wb") as handle:
        np.savez(handle, **arrays)
    return target


def _smplx_model(path: Path, data: dict[str, np.ndarray], model_type: str, **options: Any) -> torch.nn.Module:
    """The ``smplx`` module of ``model_type`` built from already read arrays, never from a pickle
    (``smplx`` prints a notice on the number of shape coefficients to stdout: kept off the console)."""
    import smplx
    from smplx.utils import Struct

    with contextlib.redirect_stdout(io.StringIO()):
        if model_type == "smpl":
            return smplx.SMPL(str(path), data_struct=Struct(**data), **options)
        if model_type == "smplh":
            return smplx.SMPLH(str(path), data_struct=Struct(**data), use_pca=False, **options)
        # SMPL-X reads its file itself: give it a copy of the plain arrays (np.load of arrays only).
        with tempfile.TemporaryDirectory(prefix="munet-smplx-") as folder:
            plain = Path(folder) / "model.npz"
            np.savez(plain, **data)
            return smplx.SMPLX(str(plain), ext="npz", use_pca=False, **options)


class SMPLXBody(BodyModel):
    """SMPL-family model behind the :class:`~munet.body.base.BodyModel` interface.

    The model file is read by :func:`read_model_file` (never by ``pickle``).

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
        from smplx.vertex_ids import vertex_ids

        path = find_model_file(model_dir, model_type, gender)
        self.name = model_type
        data = read_model_file(path)
        try:
            self.model = _smplx_model(path, data, model_type, gender=gender, num_betas=num_betas, batch_size=1)
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

    def bone_labels(self) -> list[str]:
        """Names of the joints of the pose vector (3 values each), root first."""
        return list(SMPL_JOINT_NAMES[: self.pose_dim // 3])

    def vertex_mirror(self) -> torch.Tensor:
        """``(V,)`` long: each vertex's left/right mirror vertex, from the template mesh reflected
        through its YZ plane (the model's x is the person's left).

        Raises:
            ValueError: the template is not symmetric within 1 mm.
        """
        return mirror_indices(self.model.v_template.detach().cpu().double(), axis=0, tolerance=1e-3)

    def bone_mirror(self) -> torch.Tensor:
        """``(pose_dim / 3,)`` long: each pose joint's mirror joint (``left_*`` ↔ ``right_*``; a
        central joint is its own). SMPL's rest joints are unrotated, so a reflected axis-angle of the
        mirror joint poses the mirror image (:func:`munet.train.augment.mirror_pose`)."""
        labels = self.bone_labels()
        swap = {"left_": "right_", "right_": "left_"}
        mirrored = [next((swap[p] + label[len(p) :] for p in swap if label.startswith(p)), label) for label in labels]
        return torch.tensor([labels.index(name) for name in mirrored], dtype=torch.long)

    def vertex_bones(self) -> list[str]:
        """The name of the joint (:data:`SMPL_JOINT_NAMES`) that moves each vertex most (its
        largest skinning weight)."""
        strongest = self.model.lbs_weights.argmax(dim=1).tolist()
        names = list(SMPL_JOINT_NAMES)
        if max(strongest) >= len(names):
            raise ValueError(f"{self.name}: vertex_bones names SMPL's 24 joints only (hand and face joints have none)")
        return [names[j] for j in strongest]

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
                jaw_pose=zeros(3),
                leye_pose=zeros(3),
                reye_pose=zeros(3),
                expression=zeros(int(self.model.num_expression_coeffs)),
            )
        return self.model(**kwargs).vertices
