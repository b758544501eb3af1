"""CAPE → shards: the clothed, posed SMPL-topology meshes (or the raw scans) rendered around the
vertical axis, with the subject's own (minimal-shape) SMPL body; or ICON's CAPE test set.

Layouts (told apart by what ``--root`` holds; a root holding both is refused, point ``--root`` at
one of them):

- CAPE's sequences: ``sequences/<subject>/<cloth>_<motion>/<cloth>_<motion>.<NNNNNN>.npz``, read here;
- ICON's preprocessed test set (a separate download), ``scans/<id>.obj`` and ``smpl/<id>.obj``
  in ``--root`` or ``--root/cape``: read by :mod:`munet.convert.cape_icon`.

Sequences: each frame file holds ``v_posed`` (6890, 3) — the clothed mesh, posed and translated,
metres — ``pose`` (72,) and ``transl`` (3,); ``misc/smpl_tris.npy`` (the faces),
``misc/subj_genders.pkl`` (subject → gender, read by the restricted unpickler of
:mod:`munet.safe_pickle`; without it the genders CAPE publishes, :data:`GENDERS`, are used) and
``minimal_body_shape/<subject>/<subject>_minimal.npy`` (the undressed body, canonical pose).

Clothed surface (``--scans``): ``registered`` (default) takes ``v_posed`` with SMPL's faces;
``raw`` takes CAPE's raw scan of the frame, ``raw_scans/<subject>/<cloth>_<motion>/*.ply``
(binary or ASCII PLY, **millimetres**, not watertight; vertex colours, when present, are not used:
the scan is rendered in the same plain grey as the registered meshes), matched to the frame by the
number its file name ends with (``<cloth>_<motion>.<NNNNNN>.ply``) and converted to metres (×
:data:`MILLIMETRES`) in the same world frame. Frames without a raw scan, with an unreadable or
broken one (no face, NaN vertices) or with one that does not line up with the registered mesh (the
median distance from the registration's vertices to the scan's nearest vertex above
:data:`RAW_SCAN_GAP_M`: other units or another frame) are skipped and counted per reason;
``meta.json`` records ``scan`` (``registered``/``raw``), the raw file and that distance
(``raw_scan_gap_m``).

Body ground truth: the subject's minimal shape is the vertex template of the SMPL model of the
subject's gender, posed by SMPL's pose blend shapes and skinning with the frame's ``pose`` and
``transl`` (:func:`pose_minimal_shape`, through ``smplx.lbs``; joints regressed from the minimal
shape). The stored ``shape`` is the least-squares fit of the first 10 betas to the minimal shape
(``minimal ≈ v_template + shapedirs · betas``; its RMS residual is ``meta.json``'s
``betas_fit_rms_m``): ``body(pose, shape)`` approximates the stored vertices to that residual, while
the stored vertices are the exact minimal-shape body.

Images: CAPE has no texture: the clothed surface is rendered in a plain grey, lit by a fixed light
(:data:`munet.convert.scan_views.PLAIN_LIGHTING`), ``meta.json`` ``texture: none``. Units and frame:
metres, CAPE's (SMPL's) world frame, +y up; views as in :mod:`munet.convert.scan_views` (by default
ICON's 3 test views 0°, 120°, 240°, as CAPE serves as a test set; ``--views`` changes it). One unit
per sequence, ``<subject>_<cloth>_<motion>``, keys ``cape/<unit>/<frame:06d>_<yaw:03d>``; ``every``
keeps every n-th frame. A split file lists ``<subject>/<cloth>_<motion>`` sequences or whole
``<subject>`` folders, one per line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

from munet.config import DataConfig
from munet.convert.bodies import GenderedBodies
from munet.convert.cape_icon import convert_cape_icon, find_test_set
from munet.convert.output import ConvertError, ConvertReport, Skip, Unit, UnitError
from munet.convert.scan_views import SCAN_FACES, ScanSubject, read_split, scan_views, write_rendered_units, yaws_for
from munet.data.camera import ORTHOGRAPHIC
from munet.data.schema import BodyRecord, SampleRecord
from munet.data.textured import TexturedRenderer
from munet.safe_pickle import load_restricted

SOURCE = "cape"
"""First part of every key."""

GENDERS = {
    **dict.fromkeys(("00032", "00096", "00122", "00127", "00145", "00215", "02474", "03284", "03375", "03394"), "male"),
    **dict.fromkeys(("00134", "00159", "03223", "03331", "03383"), "female"),
}
"""CAPE's subjects and their genders (used when ``misc/subj_genders.pkl`` is absent)."""

FRAME_KEYS = ("v_posed", "pose", "transl")
"""Keys of a frame file this converter reads."""

NUM_BETAS = 10
"""Betas fitted to the minimal shape (the stored ``shape``)."""

SCANS = ("registered", "raw")
"""Clothed surfaces ``--scans`` chooses from: the registered meshes or the raw scans."""

MILLIMETRES = 0.001
"""Metres per raw-scan unit."""

RAW_SCAN_GAP_M = 0.05
"""Largest median distance, metres, from the registered mesh's vertices to the raw scan's nearest
vertex for the raw scan to be taken as the same frame in the same units."""


def fit_betas(body: Any, minimal: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares betas (10,) with ``v_template + shapedirs · betas ≈ minimal`` (6890, 3), and
    the RMS residual per coordinate, metres."""
    shapedirs = body.model.shapedirs.double().numpy()[:, :, :NUM_BETAS].reshape(-1, NUM_BETAS)
    offset = (minimal - body.model.v_template.double().numpy()).reshape(-1)
    betas = np.linalg.lstsq(shapedirs, offset, rcond=None)[0]
    return betas, float(np.sqrt(np.mean((shapedirs @ betas - offset) ** 2)))


def pose_minimal_shape(
    body: Any, minimal: np.ndarray, pose: np.ndarray, transl: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The minimal shape (6890, 3) used as SMPL's template, posed by ``pose`` (72,) axis-angle and
    moved by ``transl`` (3,): vertices (6890, 3) and the pelvis (3,), metres."""
    from smplx.lbs import lbs

    model = body.model
    with torch.no_grad():
        vertices, joints = lbs(
            torch.zeros(1, model.shapedirs.shape[-1], dtype=torch.float64),
            torch.as_tensor(pose[None], dtype=torch.float64),
            torch.as_tensor(minimal, dtype=torch.float64),
            model.shapedirs.double(),
            model.posedirs.double(),
            model.J_regressor.double(),
            model.parents,
            model.lbs_weights.double(),
        )
    return vertices[0].numpy() + transl, joints[0, 0].numpy() + transl


def find_sequences(root: Path) -> list[tuple[str, Path]]:
    """``(subject, sequence folder)`` of every sequence in ``root/sequences``, sorted."""
    return [
        (folder.parent.name, folder)
        for folder in sorted((root / "sequences").glob("*/*"))
        if folder.is_dir() and any(folder.glob("*.npz"))
    ]


def raw_scan_index(folder: Path) -> dict[int, Path]:
    """``{frame number: PLY file}`` of the raw scans in ``folder`` (the number a file's stem ends
    with, e.g. ``longshort_squats.000010.ply`` → 10); empty when there is no such folder."""
    index: dict[int, Path] = {}
    for path in sorted(folder.glob("*.ply")):
        number = re.search(r"(\d+)$", path.stem)
        if number is not None:
            index.setdefault(int(number.group(1)), path)
    return index


def read_raw_scan(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A raw scan (binary or ASCII PLY, millimetres): vertices (V, 3) in metres and faces (F, 3) as
    the file winds them (vertex colours are ignored).

    Raises:
        UnitError: an unreadable file, no face, or NaN/infinite vertices (the reason names which).
    """
    try:
        mesh = trimesh.load(path, file_type="ply", process=False, force="mesh")
    except Exception as exc:  # noqa: BLE001 (trimesh's PLY parser raises many types on a bad file)
        raise UnitError(str(path), "not a readable PLY file") from exc
    vertices, faces = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64).reshape(-1, 3)
    if not len(faces):
        raise UnitError(str(path), "holds no face")
    if not np.isfinite(vertices).all():
        raise UnitError(str(path), "NaN or infinite vertices")
    return vertices * MILLIMETRES, faces


def raw_scan_gap(registered: np.ndarray, scan: np.ndarray) -> float:
    """Median distance, metres, from the registered vertices (6890, 3) to the nearest raw-scan
    vertex (V, 3), both in metres: a few millimetres for the same frame in the same units."""
    return float(np.median(cKDTree(scan).query(registered)[0]))


def convert_cape(
    root: str | Path,
    out: str,
    *,
    body_models: str | os.PathLike | None,
    split: str | Path | None = None,
    views: int | None = None,
    every: int = 1,
    scans: str = "registered",
    projection: str = ORTHOGRAPHIC,
    scan_faces: int = SCAN_FACES,
    image_size: int = 512,
    cloth_points: int = DataConfig.cloth_points,
    samples_per_shard: int = 256,
    overwrite: bool = False,
    workers: int = 0,
) -> ConvertReport:
    """Convert CAPE sequences, or ICON's CAPE test set (see the module docstring), into shards.

    Args:
        root: CAPE's folder (``sequences/``, ``misc/``, ``minimal_body_shape/``, optionally
            ``raw_scans/``), or ICON's test set (``scans/``, ``smpl/``, list files; or the folder
            above it).
        out: output shard folder or URI.
        body_models: folder with ``SMPL_MALE`` and ``SMPL_FEMALE`` (``.npz`` or ``.pkl``).
        split: sequences: a list file of ``<subject>/<sequence>`` or ``<subject>`` lines, ``None``:
            all; ICON's test set: a list of ids (``test150.txt``, ``pose.txt``), ``None``:
            ``test150.txt`` (see :mod:`munet.convert.cape_icon`).
        views: views per frame, evenly spaced in yaw; ``None``: 0°, 120°, 240°.
        every: keep every n-th frame of a sequence (sequences only).
        scans: the clothed surface of the sequences: ``registered`` or ``raw`` (:data:`SCANS`).
        projection: the views' camera, ``"orthographic"`` (ICON's) or ``"perspective"`` (see
            :mod:`munet.convert.scan_views`).
        scan_faces: face budget of the scan each sample stores (0: the full scan; see
            :func:`munet.convert.scan_views.stored_scan`).
        image_size: side S of the renderings, pixels.
        cloth_points: surface samples per sample.
        samples_per_shard: most samples per shard.
        overwrite: replace what ``out`` holds.
        workers: convert this many units at once as Ray tasks (see
            :func:`~munet.convert.output.write_units`); 0: in this process.

    Raises:
        ConvertError: neither layout (or both) under ``root``, no ``misc/smpl_tris.npy``, no raw
            scan at all with ``scans="raw"``, options the layout does not take, an unreadable split
            file or gender file, or missing SMPL models (the message names the file and where it goes).
        FileExistsError: ``out`` holds another conversion (without ``overwrite``).
    """
    if every <= 0:
        raise ValueError(f"every must be positive, got {every}")
    if scans not in SCANS:
        raise ValueError(f"scans must be one of {SCANS}, got {scans!r}")
    root = Path(root).expanduser()
    sequences = find_sequences(root)
    test_set = find_test_set(root)
    if test_set is not None and sequences:
        raise ConvertError(
            f"{root} holds both CAPE's sequences/ and ICON's CAPE test set ({test_set / 'scans'}): point --root at "
            "the one to convert"
        )
    if test_set is not None:
        if scans != "registered" or every != 1:
            raise ConvertError(
                f"{test_set}: ICON's CAPE test set has one scan per id: --scans raw and --every apply to CAPE's "
                "sequences only"
            )
        return convert_cape_icon(
            test_set,
            out,
            source=SOURCE,
            body_models=body_models,
            genders=_genders(root),
            split=split,
            views=views,
            projection=projection,
            scan_faces=scan_faces,
            image_size=image_size,
            cloth_points=cloth_points,
            samples_per_shard=samples_per_shard,
            overwrite=overwrite,
            workers=workers,
        )
    if not sequences:
        raise ConvertError(
            f"{root} holds no CAPE data: expected CAPE's sequences/<subject>/<cloth>_<motion>/*.npz or ICON's CAPE "
            "test set (scans/<id>.obj and smpl/<id>.obj, or cape/scans/ …)"
        )
    if scans == "raw" and not any((root / "raw_scans").glob("*/*/*.ply")):
        raise ConvertError(
            f"--scans raw: {root / 'raw_scans'} holds no raw scan: expected raw_scans/<subject>/<cloth>_<motion>/*.ply"
        )
    if split is not None:
        try:
            wanted = set(read_split(split))
        except FileNotFoundError as exc:
            raise ConvertError(str(exc)) from exc
        sequences = [(s, f) for s, f in sequences if s in wanted or f"{s}/{f.name}" in wanted]
        if not sequences:
            raise ConvertError(f"split file {split} names no sequence found in {root / 'sequences'}")
    faces = _faces(root)
    genders = _genders(root)
    bodies = GenderedBodies(body_models, "CAPE")
    yaws = yaws_for(views, test=True)
    units = [Unit(f"{subject}_{folder.name}", str(folder), (subject, folder)) for subject, folder in sequences]

    def convert(unit: Unit, renderer: TexturedRenderer) -> Iterator[SampleRecord | Skip]:
        yield from _sequence(
            root, unit, faces, genders, bodies, renderer, yaws, every, cloth_points, scans, projection, scan_faces
        )

    settings: dict[str, Any] = {
        "split": None if split is None else Path(split).name,
        "scans": scans,
        "yaws": list(yaws),
        "projection": projection,
        "every": every,
        "image_size": image_size,
        "cloth_points": cloth_points,
    }
    return write_rendered_units(
        out, SOURCE, settings, units, convert, image_size, samples_per_shard, overwrite, workers, scan_faces
    )


def _faces(root: Path) -> np.ndarray:
    path = root / "misc" / "smpl_tris.npy"
    try:
        faces = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConvertError(f"{path}: CAPE's SMPL faces (misc/smpl_tris.npy) are missing or unreadable: {exc}") from exc
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.min() < 0 or faces.max() >= 6890:
        raise ConvertError(f"{path}: expected SMPL's faces (F, 3) indexing 6890 vertices, got {faces.shape}")
    return faces.astype(np.int64)


def _genders(root: Path) -> dict[str, str]:
    path = root / "misc" / "subj_genders.pkl"
    if not path.is_file():
        return dict(GENDERS)
    try:
        data = load_restricted(path)
    except (ValueError, OSError) as exc:
        raise ConvertError(str(exc)) from exc
    if not isinstance(data, dict):
        raise ConvertError(f"{path} holds a {type(data).__name__}, not CAPE's subject → gender dictionary")
    return {str(subject): str(gender).lower() for subject, gender in data.items()}


def _sequence(
    root: Path,
    unit: Unit,
    faces: np.ndarray,
    genders: dict[str, str],
    bodies: GenderedBodies,
    renderer: Any,
    yaws: tuple[int, ...],
    every: int,
    cloth_points: int,
    scans: str,
    projection: str,
    scan_faces: int,
) -> Iterator[SampleRecord | Skip]:
    subject, folder = unit.payload
    raw_folder = root / "raw_scans" / subject / folder.name
    raw = raw_scan_index(raw_folder) if scans == "raw" else {}
    gender = genders.get(subject)
    if gender not in ("male", "female"):
        raise UnitError(str(root / "misc" / "subj_genders.pkl"), f"no male/female gender for subject {subject}")
    minimal_path = root / "minimal_body_shape" / subject / f"{subject}_minimal.npy"
    try:
        minimal = np.asarray(np.load(minimal_path, allow_pickle=False), np.float64)
    except (OSError, ValueError) as exc:
        raise UnitError(str(minimal_path), f"the subject's minimal body shape is missing or unreadable: {exc}") from exc
    if minimal.shape != (6890, 3) or not np.isfinite(minimal).all():
        raise UnitError(str(minimal_path), f"expected finite (6890, 3) vertices, got {minimal.shape}")
    body = bodies.get(gender)
    betas, residual = fit_betas(body, minimal)
    frames = sorted(folder.glob(f"{folder.name}.*.npz"))
    for path in frames[::every]:
        number = path.name.split(".")[-2]
        key = f"{SOURCE}/{unit.name}/{number}"
        if not number.isdigit():
            yield Skip(key, "frame file name without a frame number", str(path))
            continue
        try:
            with np.load(path, allow_pickle=False) as data:
                frame = {name: np.asarray(data[name], np.float64) for name in FRAME_KEYS}
        except (OSError, ValueError, KeyError) as exc:
            yield Skip(key, f"unreadable frame file, or one without {list(FRAME_KEYS)}", str(path))
            del exc
            continue
        shapes = {"v_posed": (6890, 3), "pose": (72,), "transl": (3,)}
        if any(frame[name].shape != shape for name, shape in shapes.items()):
            yield Skip(key, "frame arrays of the wrong shape", str(path))
            continue
        if not all(np.isfinite(value).all() for value in frame.values()):
            yield Skip(key, "NaN or infinite values in the frame", str(path))
            continue
        surface, surface_faces, surface_meta = frame["v_posed"], faces, {"scan": "registered"}
        if scans == "raw":
            if int(number) not in raw:
                yield Skip(key, "no raw scan of this frame", str(raw_folder))
                continue
            try:
                surface, surface_faces = read_raw_scan(raw[int(number)])
            except UnitError as exc:
                yield Skip(key, f"raw scan: {exc.reason}", exc.file)
                continue
            gap = raw_scan_gap(frame["v_posed"], surface)
            if gap > RAW_SCAN_GAP_M:
                yield Skip(
                    key, "raw scan does not line up with the registered mesh (not millimetres?)", str(raw[int(number)])
                )
                continue
            surface_meta = {"scan": "raw", "raw_scan": raw[int(number)].name, "raw_scan_gap_m": gap}
        vertices, pelvis = pose_minimal_shape(body, minimal, frame["pose"], frame["transl"])
        joints = body.regress_joints(torch.as_tensor(vertices[None], dtype=torch.float32))[0].double().numpy()
        record = BodyRecord(backend="smpl", pose=frame["pose"], shape=betas, vertices=vertices, joints=joints)
        subject_record = ScanSubject(
            name=unit.name,
            vertices=surface,
            faces=surface_faces,
            uvs=None,
            texture=None,
            body=record,
            pelvis=pelvis,
            meta={
                "cape_subject": subject,
                "sequence": folder.name,
                "frame": int(number),
                "gender": gender,
                "texture": "none",
                "betas_fit_rms_m": residual,
                **surface_meta,
            },
        )
        yield from scan_views(
            subject_record,
            renderer,
            SOURCE,
            yaws,
            cloth_points,
            view_prefix=f"{number}_",
            projection=projection,
            scan_faces=scan_faces,
        )
