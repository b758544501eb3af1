"""ICON's preprocessed CAPE test set → shards: each clothed scan rendered in ICON's 3 test views, with
COCO-17 joints regressed from its fitted SMPL mesh; **no body mesh target**.

Input (``--root``): the test set as downloaded, the folder holding ``scans/`` and ``smpl/`` or the
folder above it (``cape/scans``):

- ``scans/<id>.obj``: the clothed scan, metres, CAPE's world frame (+y up);
- ``smpl/<id>.obj``: the SMPL body fitted to it (6890 vertices, metres, same frame);
- ``test150.txt``: the 150 test ids, 50 "easy" (CAPE-FP) and 100 "hard" (CAPE-NFP), and
  ``pose.txt``: the 100 hard ones (beside ``scans/`` or in ``--root``).

An id is ``<subject>-<cloth>-<motion>-<frame>``, e.g. ``00134-longlong-ballet4_trial2-000250``; the
subject gives the gender (:data:`munet.convert.cape.GENDERS`, or ``misc/subj_genders.pkl`` when
present). ``--split`` names the list to convert (a path, or the name of a list beside ``scans/``:
``test150.txt``, ``pose.txt``); without it, ``test150.txt`` when present, else every scan. Entries
may carry a ``cape/`` prefix (it is dropped). Views: ICON's test views 0°, 120°, 240° whatever the
list's name (``--views N`` changes it); cameras and rendering as in :mod:`munet.convert.scan_views`
(the scan has no texture: a plain lit grey, ``meta.json`` ``texture: none``). One unit per id, keys
``cape/<id>/<yaw:03d>``; ``meta.json`` records ``layout: icon``, the subject, cloth, motion and
frame parsed from the id, and, when ``pose.txt`` is present, ``icon_subset`` (``CAPE-NFP`` for the
ids it lists, ``CAPE-FP`` for the others).

Body: the SMPL meshes come without their parameters (pose, shape), and a ``body_mesh`` target is
pose, shape and vertices together (:class:`munet.data.schema.BodyRecord`; the decoder's mesh flag
also weights the parameter loss), so no body mesh is stored (``backend`` ``none``): the COCO-17
``joints`` (and their projection, ``joints_2d``) are regressed from the mesh with the regressor of
the user's SMPL model of the subject's gender (``--body-models``), and the views are centred on the
mesh's SMPL pelvis. A body whose pelvis lies outside the scan's bounding box is refused (another
scan's body, or other units).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from munet.config import DataConfig
from munet.convert.bodies import GenderedBodies
from munet.convert.output import ConvertError, ConvertReport, Skip, Unit, UnitError
from munet.convert.scan_views import (
    SCAN_FACES,
    ScanSubject,
    read_obj,
    read_split,
    scan_views,
    write_rendered_units,
    yaws_for,
)
from munet.data.camera import ORTHOGRAPHIC
from munet.data.schema import BodyRecord, SampleRecord
from munet.data.textured import TexturedRenderer

TEST_LIST = "test150.txt"
"""ICON's CAPE test list (150 ids), the default split."""

HARD_LIST = "pose.txt"
"""ICON's list of the 100 "hard" ids (CAPE-NFP, novel poses); the others of the test list are CAPE-FP."""

SMPL_VERTICES = 6890
"""Vertices of a fitted SMPL mesh."""


def find_test_set(root: Path) -> Path | None:
    """The folder of ICON's CAPE test set under ``root`` (``root`` itself or ``root/cape``: the one
    whose ``scans/`` holds OBJ files), or ``None``."""
    for folder in (root, root / "cape"):
        if any((folder / "scans").glob("*.obj")):
            return folder
    return None


def parse_id(name: str) -> dict[str, Any]:
    """``subject``, ``cloth``, ``motion`` and ``frame`` (int) of an id ``<subject>-<cloth>-<motion>-<frame>``.

    Raises:
        ValueError: an id of another form.
    """
    parts = name.split("-")
    odd = any(c in "./" or c.isspace() for c in name)
    if odd or len(parts) < 4 or not parts[0].isdigit() or not parts[-1].isdigit():
        raise ValueError(f"id {name!r} is not of the form <subject>-<cloth>-<motion>-<frame>")
    return {"subject": parts[0], "cloth": parts[1], "motion": "-".join(parts[2:-1]), "frame": int(parts[-1])}


def read_id_list(path: Path) -> list[str]:
    """The ids of an ICON list file (``cape/`` prefixes dropped), in the file's order.

    Raises:
        ConvertError: a missing file.
    """
    try:
        return [entry.rsplit("/", 1)[-1] for entry in read_split(path)]
    except FileNotFoundError as exc:
        raise ConvertError(str(exc)) from exc


def convert_cape_icon(
    folder: Path,
    out: str,
    *,
    source: str,
    body_models: str | os.PathLike | None,
    genders: dict[str, str],
    split: str | Path | None = None,
    views: int | None = None,
    projection: str = ORTHOGRAPHIC,
    scan_faces: int = SCAN_FACES,
    image_size: int = 512,
    cloth_points: int = DataConfig.cloth_points,
    samples_per_shard: int = 256,
    overwrite: bool = False,
    workers: int = 0,
) -> ConvertReport:
    """Convert ICON's CAPE test set (see the module docstring) into shards.

    Args:
        folder: the folder holding ``scans/`` and ``smpl/`` (:func:`find_test_set`).
        out: output shard folder or URI.
        source: the first part of every key (CAPE's, :data:`munet.convert.cape.SOURCE`).
        body_models: folder with ``SMPL_MALE`` and ``SMPL_FEMALE`` (``.npz`` or ``.pkl``).
        genders: subject → ``male``/``female``.
        split: a list file of ids (a path, or a file name beside ``scans/``); ``None``:
            ``test150.txt`` when present, else every scan.
        views: views per scan, evenly spaced in yaw; ``None``: 0°, 120°, 240°.
        projection: the views' camera, ``"orthographic"`` (ICON's) or ``"perspective"`` (see
            :mod:`munet.convert.scan_views`).
        scan_faces: face budget of the scan each sample stores (0: the full scan; see
            :func:`munet.convert.scan_views.stored_scan`).
        image_size: side S of the renderings, pixels.
        cloth_points: surface samples per sample.
        samples_per_shard: most samples per shard.
        overwrite: replace what ``out`` holds.
        workers: convert this many units at once as Ray tasks; 0: in this process.

    Raises:
        ConvertError: a missing or empty list file, or missing SMPL models.
        FileExistsError: ``out`` holds another conversion (without ``overwrite``).
    """
    split_path = _split_file(folder, split)
    names = read_id_list(split_path) if split_path is not None else sorted(p.stem for p in folder.glob("scans/*.obj"))
    if not names:
        raise ConvertError(
            f"split file {split_path} lists no id: expected ids like 00134-longlong-ballet4_trial2-000250, one per line"
        )
    hard_path = next((p for p in (folder / HARD_LIST, folder.parent / HARD_LIST) if p.is_file()), None)
    hard = set(read_id_list(hard_path)) if hard_path is not None else None
    bodies = GenderedBodies(body_models, "CAPE")
    yaws = yaws_for(views, test=True)
    units = [Unit(name, str(folder / "scans" / f"{name}.obj"), folder) for name in names]

    def convert(unit: Unit, renderer: TexturedRenderer) -> Iterator[SampleRecord | Skip]:
        subject = load_subject(unit, genders, bodies, hard)
        yield from scan_views(
            subject, renderer, source, yaws, cloth_points, projection=projection, scan_faces=scan_faces
        )

    settings: dict[str, Any] = {
        "layout": "icon",
        "split": None if split_path is None else split_path.name,
        "scans": len(names),
        "yaws": list(yaws),
        "projection": projection,
        "image_size": image_size,
        "cloth_points": cloth_points,
    }
    return write_rendered_units(
        out, source, settings, units, convert, image_size, samples_per_shard, overwrite, workers, scan_faces
    )


def _split_file(folder: Path, split: str | Path | None) -> Path | None:
    """The list file to convert: ``split`` as a path, or a file of that name beside ``scans/`` or
    above it; without ``split``, ``test150.txt`` there when present."""
    if split is not None and Path(split).expanduser().is_file():
        return Path(split).expanduser()
    name = TEST_LIST if split is None else Path(split).name
    found = next((p for p in (folder / name, folder.parent / name) if p.is_file()), None)
    if found is None and split is not None:
        raise ConvertError(
            f"split file {split} does not exist (nor {folder / name}): give ICON's {TEST_LIST} or {HARD_LIST}, "
            "or a list of ids, one per line"
        )
    return found


def load_subject(unit: Unit, genders: dict[str, str], bodies: GenderedBodies, hard: set[str] | None) -> ScanSubject:
    """One test scan and its body's joints, in CAPE's world frame (metres).

    Raises:
        UnitError: an id of another form, a subject without a gender, a missing or broken scan or
            body mesh (NaN vertices, not 6890 vertices), or a body outside the scan.
    """
    folder: Path = unit.payload
    scan_path, body_path = folder / "scans" / f"{unit.name}.obj", folder / "smpl" / f"{unit.name}.obj"
    try:
        parts = parse_id(unit.name)
    except ValueError as exc:
        raise UnitError(str(scan_path), str(exc)) from exc
    gender = genders.get(parts["subject"])
    if gender not in ("male", "female"):
        raise UnitError(str(scan_path), f"no male/female gender for CAPE subject {parts['subject']}")
    for path, what in ((scan_path, "the clothed scan"), (body_path, "the fitted SMPL body")):
        if not path.is_file():
            raise UnitError(str(path), f"missing: {what} of {unit.name} (listed in the split)")
    scan = read_obj(scan_path, with_texture=False)
    body_vertices = read_obj(body_path, with_texture=False).vertices
    if body_vertices.shape != (SMPL_VERTICES, 3):
        raise UnitError(str(body_path), f"holds {len(body_vertices)} vertices, not an SMPL mesh ({SMPL_VERTICES})")
    body = bodies.get(gender)
    vertices = torch.as_tensor(body_vertices[None], dtype=torch.float32)
    joints = body.regress_joints(vertices)[0].double().numpy()
    pelvis = body.model.J_regressor[0].double().numpy() @ body_vertices
    low, high = scan.vertices.min(0), scan.vertices.max(0)
    if not ((pelvis > low) & (pelvis < high)).all():
        raise UnitError(
            str(body_path),
            f"the body's pelvis {np.round(pelvis, 3).tolist()} lies outside the scan's bounding box "
            f"{np.round(low, 3).tolist()} … {np.round(high, 3).tolist()} (another scan's body, or not in metres)",
        )
    meta: dict[str, Any] = {"layout": "icon", "cape_subject": parts["subject"], "gender": gender, "texture": "none"}
    meta.update(cloth=parts["cloth"], motion=parts["motion"], frame=parts["frame"], body_fit=f"smpl/{body_path.name}")
    if hard is not None:
        meta["icon_subset"] = "CAPE-NFP" if unit.name in hard else "CAPE-FP"
    return ScanSubject(
        name=unit.name,
        vertices=scan.vertices,
        faces=scan.faces,
        uvs=None,
        texture=None,
        body=BodyRecord(backend="none", joints=joints),
        pelvis=pelvis,
        meta=meta,
    )
