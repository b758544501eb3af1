"""RenderPeople → shards: textured scans rendered around the vertical axis; COCO-17 joints from the
AGORA SMPL-X fits when present; **no body mesh target**.

Input (``--root``): ``<name>_OBJ/<name>_100k.obj`` with its MTL naming ``tex/<name>_dif_2k.jpg``
(centimetres), and optionally the AGORA SMPL-X fits as meshes, ``smplx/<name>.obj`` (10475
vertices, metres, in the scan's axes). A split file lists names (ICON's RenderPeople test list:
100 ``rp_<name>_posed_<nnn>`` entries; a list whose file name contains ``test`` gets the 3 test
views). One unit per scan, keys ``renderpeople/<name>/<yaw:03d>``.

Units and frame: centimetres → metres (÷ 100). The up axis is the scan's longest extent (y or z,
depending on the scan); a z-up scan and its fit are turned by −90° about x (``(x, y, z) → (x, z,
−y)``) into the +y-up world of :mod:`munet.convert.scan_views`. The fit mesh is assumed to share the
scan's axes, in metres; a fit whose pelvis falls outside the scan's bounding box is refused (the
unit is reported).

Body: the AGORA fits are meshes without their parameters (pose, shape), so no ``body_mesh`` target
is stored (``backend`` ``none``); the COCO-17 ``joints`` and ``joints_2d`` are regressed from the
fit mesh with the joint regressor of the user's SMPL-X model file (``SMPLX_MALE``, through
:class:`munet.body.smplx_backend.SMPLXBody`), and the views are centred on the fit's pelvis. Scans
without a fit get the scan and the mask only (centred on the bounding box).
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

SOURCE = "renderpeople"
"""First part of every key."""

CENTIMETRES = 0.01
"""Metres per scan unit."""

Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
"""Rotation of a z-up scan into the +y-up world: ``(x, y, z) → (x, z, −y)``."""


def find_scans(root: Path) -> dict[str, Path]:
    """``{name: <name>_OBJ/<name>_100k.obj}`` for every scan in ``root``."""
    found = {}
    for folder in sorted(root.glob("*_OBJ")):
        name = folder.name[: -len("_OBJ")]
        found[name] = folder / f"{name}_100k.obj"
    return found


def up_rotation(vertices: np.ndarray) -> tuple[np.ndarray, str]:
    """The rotation (3, 3) into the +y-up world and the scan's up axis (``y`` or ``z``: its
    longest extent)."""
    extent = np.ptp(vertices, axis=0)
    return (Z_UP_TO_Y_UP, "z") if extent[2] > extent[1] else (np.eye(3), "y")


class _Regressor:
    """SMPL-X's COCO-17 joint regressor and pelvis row, from the user's model file."""

    def __init__(self, model_dir: str | os.PathLike | None):
        from munet.body.smplx_backend import SMPLXBody

        try:
            self.body = SMPLXBody(model_dir, model_type="smplx", gender="male", num_betas=10)
        except (FileNotFoundError, ValueError) as exc:
            raise ConvertError(
                f"RenderPeople's fits need the SMPL-X joint regressor of the male SMPL-X model (--body-models): {exc}"
            ) from exc

    def joints(self, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """COCO-17 joints (17, 3) and pelvis (3,) of fit vertices (10475, 3)."""
        joints = self.body.regress_joints(torch.as_tensor(vertices[None], dtype=torch.float32))[0].double().numpy()
        return joints, self.body.model.J_regressor[0].double().numpy() @ vertices


def convert_renderpeople(
    root: str | Path,
    out: str,
    *,
    body_models: str | os.PathLike | None = None,
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
    """Convert RenderPeople scans (see the module docstring) into shards.

    Args:
        root: the folder of ``<name>_OBJ`` folders (and ``smplx/`` fits).
        out: output shard folder or URI.
        body_models: folder with ``SMPLX_MALE`` (needed when ``root/smplx`` holds fits).
        split: a list file of scan names; ``None``: every scan.
        views: views per scan; ``None``: 3 for a test list, else 36.
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
        ConvertError: no scan, an unreadable split file, or fits without the SMPL-X model.
        FileExistsError: ``out`` holds another conversion (without ``overwrite``).
    """
    root = Path(root).expanduser()
    scans = find_scans(root) if root.is_dir() else {}
    if not scans:
        raise ConvertError(f"{root} holds no RenderPeople scan: expected <name>_OBJ/<name>_100k.obj")
    try:
        names = read_split(split) if split is not None else sorted(scans)
    except FileNotFoundError as exc:
        raise ConvertError(str(exc)) from exc
    yaws = yaws_for(views, is_test_split(split))
    has_fits = any((root / "smplx").glob("*.obj"))
    regressor = _Regressor(body_models) if has_fits else None
    units = [Unit(name, str(scans.get(name, root / f"{name}_OBJ")), scans.get(name)) for name in names]

    def convert(unit: Unit, renderer: TexturedRenderer) -> Iterator[SampleRecord | Skip]:
        yield from scan_views(
            load_subject(root, unit, regressor),
            renderer,
            SOURCE,
            yaws,
            cloth_points,
            projection=projection,
            scan_faces=scan_faces,
        )

    settings: dict[str, Any] = {
        "split": None if split is None else Path(split).name,
        "subjects": len(names),
        "yaws": list(yaws),
        "projection": projection,
        "image_size": image_size,
        "cloth_points": cloth_points,
    }
    return write_rendered_units(
        out, SOURCE, settings, units, convert, image_size, samples_per_shard, overwrite, workers, scan_faces
    )


def load_subject(root: Path, unit: Unit, regressor: _Regressor | None) -> ScanSubject:
    """One scan (and its fit's joints) in the +y-up world, metres.

    Raises:
        UnitError: missing or broken scan or texture, a fit of the wrong size, or a fit that does
            not match the scan.
    """
    if unit.payload is None:
        raise UnitError(unit.source, f"no scan {unit.name} (listed in the split, expected <name>_OBJ/<name>_100k.obj)")
    if not unit.payload.is_file():
        raise UnitError(str(unit.payload), "missing: expected the 100k-face OBJ <name>_100k.obj")
    mesh = read_obj(unit.payload)
    rotation, up = up_rotation(mesh.vertices)
    vertices = mesh.vertices * CENTIMETRES @ rotation.T
    body, pelvis = None, None
    fit_path = root / "smplx" / f"{unit.name}.obj"
    if regressor is not None and fit_path.is_file():
        fit = read_obj(fit_path, with_texture=False).vertices @ rotation.T
        if fit.shape != (10475, 3):
            raise UnitError(str(fit_path), f"holds {len(fit)} vertices, not an SMPL-X mesh (10475)")
        joints, pelvis = regressor.joints(fit)
        low, high = vertices.min(0), vertices.max(0)
        if not ((pelvis > low) & (pelvis < high)).all():
            raise UnitError(
                str(fit_path),
                f"the fit's pelvis {np.round(pelvis, 3).tolist()} lies outside the scan's bounding box "
                f"{np.round(low, 3).tolist()} … {np.round(high, 3).tolist()} (not in metres, or another scan's fit)",
            )
        body = BodyRecord(backend="none", joints=joints)
    return ScanSubject(
        name=unit.name,
        vertices=vertices,
        faces=mesh.faces,
        uvs=mesh.uvs,
        texture=mesh.texture,
        body=body,
        pelvis=pelvis,
        meta={"up_axis": up, "scan_units": "cm", "fit": fit_path.name if body is not None else None},
    )
