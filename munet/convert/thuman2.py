"""THuman2.0 / THuman2.1 → shards: textured scans rendered around 360°, with the fitted SMPL-X body.

Input (``--root``): the scans ``<id>/<id>.obj`` with ``material0.mtl`` and ``material0.jpeg``
(directly in the root or one folder down, e.g. ``THuman2.0_Release/<id>/``), and the SMPL-X fits
(male model), in either layout: ``fits/<id>/smplx_param.pkl`` (older) or ``smplx/<id>.pkl``
(later). The fit pickles are read by a restricted unpickler (:func:`load_fit`): numpy arrays and
plain values, plus trimesh's ``TrackedArray`` (an ndarray subclass, read as a plain ndarray), and
nothing else.

Fit keys: ``betas`` (1, 10), ``global_orient`` (1, 3), ``body_pose`` (1, 63), ``left_hand_pose`` /
``right_hand_pose`` (1, 12) PCA coefficients, ``jaw_pose``, ``leye_pose``, ``reye_pose`` (1, 3),
``expression`` (1, 10), ``scale`` and ``translation`` (3,). THuman2.1's later fits (ids ≥ 0526)
hold ``pose``, ``betas``, ``trans``, ``scale`` instead: ``pose`` is the global orientation and the
21 body joints (66 values), followed when present by jaw, eyes and the full 45-value hand poses
(165 in all); their translation is ``trans / scale``. In both, the fitted body in scan units is
``SMPL-X vertices × scale + translation``.

Units and frame: scan units vary per scan, so the scan is brought into the fit's SMPL-X frame,
``(scan − translation) / scale``, which is metric (metres; +y up, facing +z) because the SMPL-X
model is; the body is the SMPL-X output itself (zero translation). Body and scan therefore share
units and frame exactly. The conversion refuses a subject whose fitted pelvis lies outside the
scan's bounding box (a fit of another scan, or wrong units).

Stored per view (see :mod:`munet.convert.scan_views` for the cameras): the textured rendering,
mask and normal map; the body (``backend`` ``smplx``): ``pose`` (66,) global orientation (turned
into the camera frame) and the 21 body joints, ``shape`` the 10 betas, ``vertices`` (10475, 3)
of the full fit (hands, jaw, eyes and expression applied, so ``body(pose, shape)`` — hands and face
at rest — differs from them at the hands and face), COCO-17 ``joints`` from the model's regressor
and their projection; the scan as target ``cloth``. Splits: ICON's list files, given with
``--split FILE`` (a file whose name contains ``test`` gets the 3 test views); without one, every
scan found. One unit per subject (keys ``thuman2/<id>/<yaw:03d>``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from munet.config import DataConfig
from munet.convert.output import ConvertError, ConvertReport, Skip, Unit, UnitError
from munet.convert.scan_views import (
    SCAN_FACES,
    ScanSubject,
    is_test_split,
    read_obj,
    read_split,
    scan_views,
    write_rendered_units,
    yaws_for,
)
from munet.data.camera import ORTHOGRAPHIC
from munet.data.schema import BodyRecord, SampleRecord
from munet.data.textured import TexturedRenderer
from munet.safe_pickle import UnsafePickleError, load_restricted

SOURCE = "thuman2"
"""First part of every key."""

FIT_KEYS = (
    "betas",
    "global_orient",
    "body_pose",
    "left_hand_pose",
    "right_hand_pose",
    "jaw_pose",
    "leye_pose",
    "reye_pose",
    "expression",
    "scale",
    "translation",
)
"""Keys of a THuman2.0 fit pickle."""

FIT_KEYS_21 = ("pose", "betas", "trans", "scale")
"""Keys of a later THuman2.1 fit pickle (ids ≥ 0526)."""


TRACKED_ARRAY = {("trimesh.caching", "TrackedArray"): np.ndarray}
"""trimesh's ndarray subclass in THuman's fits, admitted by the restricted unpickler and rebuilt as a
plain ``numpy.ndarray`` (its pickle is an ndarray's, with the subclass named)."""


def load_fit(path: str | os.PathLike) -> dict[str, Any]:
    """The dictionary of a THuman SMPL-X fit pickle, without running code from it.

    Raises:
        UnitError: unreadable, not a dictionary, or holding another class than numpy arrays,
            plain values and ``TrackedArray`` (the message names the file and the class).
    """
    path = Path(path)
    try:
        data = load_restricted(path, extra=TRACKED_ARRAY)
    except (UnsafePickleError, ValueError) as exc:
        raise UnitError(str(path), str(exc).split(": ", 1)[-1]) from exc
    if not isinstance(data, dict):
        raise UnitError(str(path), f"holds a {type(data).__name__}, not THuman's dictionary of SMPL-X parameters")
    return data


def _array(data: dict[str, Any], key: str, size: int | None, path: Path) -> np.ndarray:
    value = np.asarray(data[key], np.float64).reshape(-1)
    if size is not None and value.size < size:
        raise UnitError(str(path), f"{key!r} holds {value.size} values, expected {size}")
    if not np.isfinite(value).all():
        raise UnitError(str(path), f"{key!r} holds NaN or infinite values")
    return value if size is None else value[:size]


def fit_parameters(data: dict[str, Any], path: Path) -> dict[str, np.ndarray]:
    """The SMPL-X parameters of a fit (either layout), flat float64: ``global_orient`` (3,),
    ``body_pose`` (63,), ``betas`` (10,), ``left_hand_pca``/``right_hand_pca`` (12,) or
    ``left_hand_pose``/``right_hand_pose`` (45,), ``jaw_pose``/``leye_pose``/``reye_pose`` (3,),
    ``expression`` (10,), ``scale`` (1,), ``translation`` (3,) in scan units.

    Raises:
        UnitError: a key is missing or has too few values (the message lists the keys expected).
    """
    if "global_orient" in data or "pose" not in data:
        missing = [key for key in FIT_KEYS if key not in data]
        if missing:
            raise UnitError(
                str(path),
                f"lacks the key(s) {missing}; a THuman SMPL-X fit holds {list(FIT_KEYS)} (or THuman2.1's "
                f"{list(FIT_KEYS_21)})",
            )
        params = {
            "global_orient": _array(data, "global_orient", 3, path),
            "body_pose": _array(data, "body_pose", 63, path),
            "betas": _array(data, "betas", 10, path),
            "left_hand_pca": _array(data, "left_hand_pose", None, path),
            "right_hand_pca": _array(data, "right_hand_pose", None, path),
            "translation": _array(data, "translation", 3, path),
        }
        for key in ("jaw_pose", "leye_pose", "reye_pose"):
            params[key] = _array(data, key, 3, path)
        params["expression"] = _array(data, "expression", None, path)
        scale = _array(data, "scale", 1, path)
    else:
        missing = [key for key in FIT_KEYS_21 if key not in data]
        if missing:
            raise UnitError(str(path), f"lacks the key(s) {missing}; a THuman2.1 fit holds {list(FIT_KEYS_21)}")
        pose = (
            _array(data, "pose", 66, path) if np.asarray(data["pose"]).size < 165 else _array(data, "pose", 165, path)
        )
        scale = _array(data, "scale", 1, path)
        params = {
            "global_orient": pose[:3],
            "body_pose": pose[3:66],
            "betas": _array(data, "betas", 10, path),
            "translation": _array(data, "trans", 3, path) / scale[0],  # THuman2.1: trans / scale
        }
        if pose.size == 165:
            params.update(jaw_pose=pose[66:69], leye_pose=pose[69:72], reye_pose=pose[72:75])
            params.update(left_hand_pose=pose[75:120], right_hand_pose=pose[120:165])
    if not scale[0] > 0:
        raise UnitError(str(path), f"'scale' must be positive, got {scale[0]}")
    params["scale"] = scale
    return params


class SMPLXFits:
    """The male SMPL-X model (the THuman fits' model) and its hand PCA components.

    Raises:
        ConvertError: the model file is missing or unreadable (the message says which file goes where).
    """

    def __init__(self, model_dir: str | os.PathLike | None, dataset: str = "THuman2"):
        from munet.body.smplx_backend import SMPLXBody, find_model_file, read_model_file

        try:
            path = find_model_file(model_dir, "smplx", "male")
            self.body = SMPLXBody(model_dir, model_type="smplx", gender="male", num_betas=10)
            arrays = read_model_file(path)
        except (FileNotFoundError, ValueError) as exc:
            raise ConvertError(f"{dataset} needs the male SMPL-X model (--body-models): {exc}") from exc
        missing = [key for key in ("hands_componentsl", "hands_componentsr") if key not in arrays]
        if missing:
            raise ConvertError(f"{path} lacks {missing}: not an SMPL-X model file (SMPLX_MALE.npz or .pkl expected)")
        self.components = {"left": arrays["hands_componentsl"], "right": arrays["hands_componentsr"]}
        self.num_expression = int(self.body.model.num_expression_coeffs)

    def vertices(self, params: dict[str, np.ndarray]) -> np.ndarray:
        """Posed SMPL-X vertices (10475, 3), metres, zero translation, of :func:`fit_parameters`'
        output (hand PCA coefficients expanded with the model's components)."""

        def tensor(value: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(value, np.float32)[None])

        hands = {}
        for side in ("left", "right"):
            if f"{side}_hand_pca" in params:
                pca = params[f"{side}_hand_pca"]
                hands[side] = pca @ self.components[side][: pca.size]
            else:
                hands[side] = params.get(f"{side}_hand_pose", np.zeros(45))
        expression = np.zeros(self.num_expression)
        given = params.get("expression", expression)[: self.num_expression]
        expression[: given.size] = given
        with torch.no_grad():
            output = self.body.model(
                betas=tensor(params["betas"]),
                global_orient=tensor(params["global_orient"]),
                body_pose=tensor(params["body_pose"]),
                left_hand_pose=tensor(hands["left"]),
                right_hand_pose=tensor(hands["right"]),
                jaw_pose=tensor(params.get("jaw_pose", np.zeros(3))),
                leye_pose=tensor(params.get("leye_pose", np.zeros(3))),
                reye_pose=tensor(params.get("reye_pose", np.zeros(3))),
                expression=tensor(expression),
                transl=torch.zeros(1, 3),
            )
        return output.vertices[0].double().numpy()

    def body_record(self, params: dict[str, np.ndarray], vertices: np.ndarray) -> tuple[BodyRecord, np.ndarray]:
        """The world-frame body record (``joints_2d`` left for the views) and the pelvis (3,)."""
        batch = torch.as_tensor(vertices[None], dtype=torch.float32)
        joints = self.body.regress_joints(batch)[0].double().numpy()
        pelvis = self.body.model.J_regressor[0].double().numpy() @ vertices
        record = BodyRecord(
            backend="smplx",
            pose=np.concatenate([params["global_orient"], params["body_pose"]]),
            shape=params["betas"],
            vertices=vertices,
            joints=joints,
        )
        return record, pelvis


def find_scans(root: Path) -> dict[str, Path]:
    """``{id: <id>/<id>.obj}`` for every scan in ``root`` or one folder below it."""
    found: dict[str, Path] = {}
    for pattern in ("*/*.obj", "*/*/*.obj"):
        for path in sorted(root.glob(pattern)):
            if path.stem == path.parent.name:
                found.setdefault(path.stem, path)
    return found


def find_fit(root: Path, subject: str) -> Path | None:
    """The fit pickle of ``subject`` in either layout, or ``None``."""
    for candidate in (root / "fits" / subject / "smplx_param.pkl", root / "smplx" / f"{subject}.pkl"):
        if candidate.is_file():
            return candidate
    return None


def convert_thuman2(
    root: str | Path,
    out: str,
    *,
    body_models: str | os.PathLike | None,
    split: str | Path | None = None,
    views: int | None = None,
    projection: str = ORTHOGRAPHIC,
    image_size: int = 512,
    cloth_points: int = DataConfig.cloth_points,
    scan_faces: int = SCAN_FACES,
    samples_per_shard: int = 256,
    overwrite: bool = False,
    workers: int = 0,
) -> ConvertReport:
    """Convert THuman2.0/2.1 scans (see the module docstring) into shards.

    Args:
        root: the folder holding the scans and the fits.
        out: output shard folder or URI.
        body_models: folder with ``SMPLX_MALE.npz`` (or ``.pkl``), see
            :func:`munet.body.smplx_backend.find_model_file`.
        split: a list file of subject ids (ICON's ``train.txt``/``val.txt``/``test.txt``);
            ``None``: every scan in ``root``.
        views: views per subject, evenly spaced in yaw; ``None``: 3 for a test list, else 36.
        projection: the views' camera, ``"orthographic"`` (ICON's) or ``"perspective"`` (see
            :mod:`munet.convert.scan_views`).
        image_size: side S of the renderings, pixels.
        cloth_points: surface samples per sample.
        scan_faces: face budget of the scan each sample stores (0: the full scan; see
            :func:`munet.convert.scan_views.stored_scan`).
        samples_per_shard: most samples per shard.
        overwrite: replace what ``out`` holds.
        workers: convert this many units at once as Ray tasks (see
            :func:`~munet.convert.output.write_units`); 0: in this process.

    Raises:
        ConvertError: no scan in ``root``, an unreadable split file, or a missing SMPL-X model.
        FileExistsError: ``out`` holds another conversion (without ``overwrite``).
    """
    root = Path(root).expanduser()
    scans = find_scans(root) if root.is_dir() else {}
    if not scans:
        raise ConvertError(f"{root} holds no THuman scan: expected <id>/<id>.obj (with material0.mtl and .jpeg)")
    try:
        subjects = read_split(split) if split is not None else sorted(scans)
    except FileNotFoundError as exc:
        raise ConvertError(str(exc)) from exc
    if not subjects:
        raise ConvertError(f"split file {split} lists no subject")
    yaws = yaws_for(views, is_test_split(split))
    fits = SMPLXFits(body_models)
    units = [Unit(name, str(scans.get(name, root / name / f"{name}.obj")), scans.get(name)) for name in subjects]

    def convert(unit: Unit, renderer: TexturedRenderer) -> Iterator[SampleRecord | Skip]:
        yield from scan_views(
            load_subject(root, unit, fits),
            renderer,
            SOURCE,
            yaws,
            cloth_points,
            projection=projection,
            scan_faces=scan_faces,
        )

    settings: dict[str, Any] = {
        "split": None if split is None else Path(split).name,
        "subjects": len(subjects),
        "yaws": list(yaws),
        "projection": projection,
        "image_size": image_size,
        "cloth_points": cloth_points,
    }
    return write_rendered_units(
        out, SOURCE, settings, units, convert, image_size, samples_per_shard, overwrite, workers, scan_faces
    )


def load_subject(root: Path, unit: Unit, fits: SMPLXFits) -> ScanSubject:
    """One subject's scan and fit in the fit's SMPL-X frame (metres).

    Raises:
        UnitError: missing or broken scan, texture or fit, or a fit that does not match the scan.
    """
    if unit.payload is None:
        raise UnitError(unit.source, f"no scan of subject {unit.name} (listed in the split, expected <id>/<id>.obj)")
    fit_path = find_fit(root, unit.name)
    if fit_path is None:
        raise UnitError(
            str(root / "fits" / unit.name / "smplx_param.pkl"),
            f"no SMPL-X fit of subject {unit.name} "
            f"(neither fits/{unit.name}/smplx_param.pkl nor smplx/{unit.name}.pkl)",
        )
    params = fit_parameters(load_fit(fit_path), fit_path)
    mesh = read_obj(unit.payload)
    scale = float(params["scale"][0])
    vertices = (mesh.vertices - params["translation"]) / scale
    body, pelvis = fits.body_record(params, fits.vertices(params))
    low, high = vertices.min(0), vertices.max(0)
    if not ((pelvis > low) & (pelvis < high)).all():
        raise UnitError(
            str(fit_path),
            f"the fitted pelvis {np.round(pelvis, 3).tolist()} lies outside the scan's bounding box "
            f"{np.round(low, 3).tolist()} … {np.round(high, 3).tolist()} (fit of another scan, or wrong scale)",
        )
    return ScanSubject(
        name=unit.name,
        vertices=vertices,
        faces=mesh.faces,
        uvs=mesh.uvs,
        texture=mesh.texture,
        body=body,
        pelvis=pelvis,
        meta={"scan_scale": scale, "fit": fit_path.relative_to(root).as_posix(), "gender": "male"},
    )
