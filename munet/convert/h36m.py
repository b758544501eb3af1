"""Human3.6M → shards: 3D and 2D joints, no body mesh (``backend`` ``none``).

Two preprocessed forms are read (:func:`convert_h36m` picks the one ``root`` holds):

**COCO-style JSON** (``root/annotations/Human36M_subject<k>_{data,camera,joint_3d}.json`` and the
frames under ``root/images/``): the camera of each frame is known (``R``, ``t`` in mm, ``f``,
``c``), so ``joints`` are the 17 Human3.6M joints moved into the camera frame and converted to
metres, ``joints_2d`` their projection, the crop is the square around the annotated ``bbox``.
``Human36M_subject<k>_smpl_param.json`` is never read. One unit per subject, action and
subaction (keys ``h36m/S9_act02_sub01/60457274_000005``).

**SPIN-style npz** (``root/<name>.npz`` with ``imgname``, ``center``, ``scale``, ``S``, optionally
``part``; frames at ``root/<imgname>``): ``S`` holds the 24 SPIN joints in metres, camera-oriented
but root-centred, and the file holds no camera. The stored camera is the frame's Human3.6M camera
(:data:`CAMERA_INTRINSICS`, by the camera id in ``imgname``; lens distortion ignored) and the root
position is recovered, honestly labelled in ``meta.json`` (``root_translation``):

- ``fit_2d`` when ``part`` (the 2D joints) is present: the translation that projects ``S`` onto
  ``part`` best (:func:`~munet.convert.frames.fit_translation`), so the 3D joints are camera-frame
  and project onto the stored ``joints_2d``;
- ``estimated`` without ``part``: the root on the ray through the box centre, at the depth where
  the skeleton's extent fills the box; only the root-relative joints are ground truth (what the
  3D-joint loss and the benchmark use, both pelvis-aligned), and no ``joints_2d`` is stored.

Joints: COCO-17 ``joints`` hold the shoulders, elbows, wrists, hips, knees and ankles (valid 1 where
the data set marks them visible); the face joints are 0 in ``joints_valid`` (the JSON form has no
face joints; the npz's are mostly invisible). ``eval_joints`` are the 14 LSP joints in metres,
camera frame (``lsp14``, the Human3.6M P2 ground truth of SPIN-style evaluation).

Splits (``split``): ``p2-test`` is protocol 2's test set, subjects S9 and S11, camera 60457274,
every 5th frame; ``train`` is subjects S1, S5, S6, S7, S8, all cameras, every 5th frame. The JSON
form applies all three; the npz form applies the subjects and camera and takes the frames the file
holds (SPIN's npz files already hold every 5th frame).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from munet.convert.frames import (
    JOINT_BOX_FILL,
    centred_crop,
    coco17_map,
    fit_translation,
    project,
    read_frame,
    square_crop,
    to_coco17,
)
from munet.convert.output import ConvertError, ConvertReport, Skip, Unit, UnitError, write_units
from munet.data.schema import BodyRecord, SampleRecord, make_key
from munet.metrics.protocols import LSP14_NAMES

SOURCE = "h36m"
"""First part of every key."""

SPIN24_NAMES: tuple[str, ...] = (
    *LSP14_NAMES,
    "pelvis",
    "thorax",
    "spine",
    "jaw",
    "head",
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
)
"""The 24 joints of SPIN's npz files (``S``, ``part``); the first 14 are the LSP joints."""

H36M_JSON17_NAMES: tuple[str, ...] = (
    "pelvis",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
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
"""The 17 joints of ``Human36M_subject<k>_joint_3d.json``, in its order (the right leg first; the
Human3.6M regressor of :mod:`munet.metrics.protocols` lists the left leg first)."""

CAMERA_IDS: tuple[str, ...] = ("54138969", "55011271", "58860488", "60457274")
"""Human3.6M's cameras; the JSON form's ``cam_idx`` 1–4 is their position here."""

CAMERA_INTRINSICS: dict[str, tuple[float, float, float, float]] = {
    "54138969": (1145.05, 1143.78, 512.54, 515.45),
    "55011271": (1149.68, 1147.59, 508.85, 508.06),
    "58860488": (1149.14, 1148.80, 519.82, 501.40),
    "60457274": (1145.51, 1144.77, 514.97, 501.88),
}
"""``(fx, fy, cx, cy)`` in pixels of the 1000 × 1000 (1002) frames, per camera id (the data set's
calibration; the same for every subject up to a pixel)."""


@dataclass(frozen=True)
class Split:
    """A subset of Human3.6M.

    Attributes:
        subjects: subject numbers.
        camera: the only camera id kept, or ``None`` for all.
        every: keep frames whose index is a multiple of this (JSON form).
    """

    subjects: tuple[int, ...]
    camera: str | None
    every: int


SPLITS: dict[str, Split] = {
    "p2-test": Split(subjects=(9, 11), camera="60457274", every=5),
    "train": Split(subjects=(1, 5, 6, 7, 8), camera=None, every=5),
}
"""The named splits (see the module docstring)."""

_SPIN_TO_COCO = coco17_map(SPIN24_NAMES)
_H36M_TO_COCO = coco17_map(H36M_JSON17_NAMES)
_H36M_TO_LSP14 = np.array([H36M_JSON17_NAMES.index("thorax" if n == "neck" else n) for n in LSP14_NAMES])
_IMGNAME = re.compile(r"^(S(\d+))_([^.]+)\.(\d+)_(\d+)\.\w+$")


def convert_h36m(
    root: str | Path,
    out: str,
    *,
    split: str = "p2-test",
    image_size: int = 256,
    npz: str | None = None,
    every: int | None = None,
    samples_per_shard: int = 256,
    overwrite: bool = False,
    workers: int = 0,
) -> ConvertReport:
    """Convert Human3.6M (either preprocessed form, see the module docstring) into shards.

    Args:
        root: the folder with ``annotations/`` and ``images/`` (JSON form), or with the npz file
            and the ``images/`` its ``imgname`` entries name.
        out: output shard folder or URI.
        split: a key of :data:`SPLITS`.
        image_size: side S of the stored crops, pixels.
        npz: the npz file name in ``root`` (needed when it holds several).
        every: keep every n-th frame (JSON form; default: the split's).
        samples_per_shard: most samples per shard.
        overwrite: replace what ``out`` holds.
        workers: convert this many units at once as Ray tasks (see
            :func:`~munet.convert.output.write_units`); 0: in this process.

    Raises:
        ConvertError: ``root`` holds neither form (the message says what was expected).
        FileExistsError: ``out`` holds another conversion (without ``overwrite``).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    root = Path(root).expanduser()
    chosen = SPLITS[split]
    every = chosen.every if every is None else int(every)
    if every <= 0:
        raise ValueError(f"every must be positive, got {every}")
    settings: dict[str, Any] = {"split": split, "image_size": image_size, "every": every}
    annotations = root / "annotations"
    if annotations.is_dir() and any(annotations.glob("Human36M_subject*_data.json")):
        settings["form"] = "json"
        units = _json_units(root, chosen)
        convert = lambda unit: _json_unit(root, unit, chosen, every, image_size)  # noqa: E731
    else:
        path = _find_npz(root, npz)
        settings.update(form="npz", npz=path.name)
        units = _npz_units(path, chosen)
        convert = lambda unit: _npz_unit(root, path, unit, image_size)  # noqa: E731
    return write_units(
        out, SOURCE, settings, units, convert, samples_per_shard=samples_per_shard, overwrite=overwrite, workers=workers
    )


# --- SPIN-style npz ---------------------------------------------------------------------------


def _find_npz(root: Path, name: str | None) -> Path:
    if not root.is_dir():
        raise ConvertError(f"Human3.6M root {root} does not exist or is not a folder")
    if name is not None:
        path = root / name
        if not path.is_file():
            raise ConvertError(f"{path} does not exist (--npz names a file in --root)")
        return path
    found = sorted(root.glob("*.npz"))
    if not found:
        raise ConvertError(
            f"{root} holds neither form of Human3.6M: expected annotations/Human36M_subject<k>_data.json "
            "(with _camera.json and _joint_3d.json) and images/, or a SPIN-style .npz (imgname, center, "
            "scale, S) beside the images it names"
        )
    if len(found) > 1:
        raise ConvertError(f"{root} holds several .npz files ({[p.name for p in found]}): choose one with --npz")
    return found[0]


_NPZ_REQUIRED = {"imgname": 1, "center": 2, "scale": 1, "S": 3}


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a SPIN-style npz, checked (``UnitError`` naming the file otherwise)."""
    try:
        with np.load(path, allow_pickle=False) as members:
            data = {key: members[key] for key in members.files if key in (*_NPZ_REQUIRED, "part")}
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: say which and why
        raise UnitError(str(path), f"not a readable .npz of plain arrays ({type(exc).__name__}: {exc})") from exc
    missing = [key for key in _NPZ_REQUIRED if key not in data]
    if missing:
        raise UnitError(str(path), f"lacks {missing}; a SPIN-style Human3.6M npz holds imgname, center, scale, S")
    count = len(data["imgname"])
    shapes = {"center": (count, 2), "scale": (count,), "S": (count, 24, 4), "part": (count, 24, 3)}
    for key, shape in shapes.items():
        if key in data and data[key].shape != shape:
            raise UnitError(str(path), f"{key} has shape {data[key].shape}, expected {shape}")
    return data


def _npz_units(path: Path, split: Split) -> list[Unit]:
    """One unit per subject and action, holding the indices of its frames."""
    try:
        data = _load_npz(path)
    except UnitError as exc:
        raise ConvertError(str(exc)) from exc
    groups: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for index, name in enumerate(data["imgname"]):
        match = _IMGNAME.match(Path(str(name)).name)
        if match is None:
            groups["unparsed"].append(("", index))
            continue
        subject, action, camera, frame = int(match[2]), match[3], match[4], match[5]
        if subject not in split.subjects or (split.camera is not None and camera != split.camera):
            continue
        unit = f"{match[1]}_" + re.sub(r"[\s./]+", "-", action)
        groups[unit].append((f"{camera}_{frame}", index))
    return [Unit(name, str(path), sorted(items)) for name, items in sorted(groups.items())]


def _npz_unit(root: Path, path: Path, unit: Unit, image_size: int) -> Iterator[SampleRecord | Skip]:
    data = _load_npz(path)
    if unit.name == "unparsed":
        for _, index in unit.payload:
            yield Skip(str(data["imgname"][index]), "imgname not of the form S<k>_<action>.<camera>_<frame>.jpg")
        return
    previous = None
    for view, index in unit.payload:
        imgname = str(data["imgname"][index])
        key = make_key(SOURCE, unit.name, view)
        if key == previous:
            yield Skip(key, "duplicate imgname", imgname)
            continue
        previous = key
        camera = view.split("_")[0]
        if camera not in CAMERA_INTRINSICS:
            yield Skip(key, "unknown camera id", imgname)
            continue
        fx, fy, cx, cy = CAMERA_INTRINSICS[camera]
        K_frame = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        crop = centred_crop(data["center"][index], 200.0 * float(data["scale"][index]))
        if crop is None:
            yield Skip(key, "person box too small", imgname)
            continue
        skeleton = np.asarray(data["S"][index], np.float64)
        points, visible = skeleton[:, :3], skeleton[:, 3] > 0
        joints_2d = joints_2d_valid = None
        translation, how = None, "fit_2d"
        if "part" in data:
            part = np.asarray(data["part"][index], np.float64)
            seen = visible & (part[:, 2] > 0)
            translation = fit_translation(points[seen], part[seen, :2], K_frame)
            coco_2d, present = to_coco17(part[:, :2], _SPIN_TO_COCO)
            joints_2d = crop.pixels(coco_2d, image_size)
            joints_2d_valid = present * (to_coco17(part[:, 2:], _SPIN_TO_COCO)[0][:, 0] > 0)
        if translation is None:
            how = "estimated"
            extent = float(np.ptp(points[visible], axis=0).max()) if visible.sum() >= 2 else 1.7
            depth = fx * extent / (crop.side * JOINT_BOX_FILL)
            centre = np.array([crop.left + crop.side / 2 - 0.5, crop.top + crop.side / 2 - 0.5, 1.0])
            translation = depth * (np.linalg.inv(K_frame) @ centre) - points[SPIN24_NAMES.index("pelvis")]
            joints_2d = joints_2d_valid = None
        frame = read_frame(root / imgname)
        if frame is None:
            yield Skip(key, "missing or unreadable image file", str(root / imgname))
            continue
        camera_points = points + translation
        joints, present = to_coco17(camera_points, _SPIN_TO_COCO)
        valid = present * (to_coco17(skeleton[:, 3:], _SPIN_TO_COCO)[0][:, 0] > 0)
        body = BodyRecord(
            backend="none",
            joints=joints,
            joints_valid=valid,
            joints_2d=joints_2d,
            joints_2d_valid=joints_2d_valid,
            eval_joints=camera_points[:14],
            eval_joint_set="lsp14",
        )
        meta = {"image": imgname, "camera_id": camera, "root_translation": how}
        yield crop.sample(key, frame, K_frame, image_size, body, meta)


# --- COCO-style JSON --------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise UnitError(str(path), "missing (each subject needs its _data.json, _camera.json and _joint_3d.json)")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnitError(str(path), f"not readable JSON ({exc})") from exc


def _subject_files(root: Path, subject: int) -> dict[str, Path]:
    folder = root / "annotations"
    return {kind: folder / f"Human36M_subject{subject}_{kind}.json" for kind in ("data", "camera", "joint_3d")}


def _json_units(root: Path, split: Split) -> list[Unit]:
    """One unit per subject, action and subaction present in the subjects' data files; a subject
    whose data file is missing or unreadable becomes one failing unit."""
    units = []
    for subject in split.subjects:
        path = _subject_files(root, subject)["data"]
        try:
            data = _read_json(path)
            images = data["images"]
            seen = sorted({(int(im["action_idx"]), int(im["subaction_idx"])) for im in images})
        except UnitError as exc:
            units.append(Unit(f"S{subject}", str(path), exc))
            continue
        except (KeyError, TypeError, ValueError) as exc:
            units.append(Unit(f"S{subject}", str(path), UnitError(str(path), f"not a COCO-style data file ({exc!r})")))
            continue
        units += [Unit(f"S{subject}_act{a:02d}_sub{s:02d}", str(path), (subject, a, s)) for a, s in seen]
    return units


_json_cache: dict[Path, Any] = {}


def _cached_json(path: Path) -> Any:
    """The parsed file, kept while the units of one subject are converted (one subject at a time)."""
    if path not in _json_cache:
        stale = [p for p in _json_cache if p.name.split("_")[1] != path.name.split("_")[1]]
        for p in stale:
            del _json_cache[p]
        _json_cache[path] = _read_json(path)
    return _json_cache[path]


def _json_unit(root: Path, unit: Unit, split: Split, every: int, image_size: int) -> Iterator[SampleRecord | Skip]:
    if isinstance(unit.payload, UnitError):
        raise unit.payload
    subject, action, subaction = unit.payload
    files = _subject_files(root, subject)
    data, cameras, joints_3d = (_cached_json(files[kind]) for kind in ("data", "camera", "joint_3d"))
    try:
        annotations = {int(a["image_id"]): a for a in data["annotations"]}
        images = [
            im for im in data["images"] if (int(im["action_idx"]), int(im["subaction_idx"])) == (action, subaction)
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise UnitError(str(files["data"]), f"not a COCO-style data file ({exc!r})") from exc
    selected = []
    for image in images:
        try:
            cam_idx, frame_idx = int(image["cam_idx"]), int(image["frame_idx"])
            camera_id = CAMERA_IDS[cam_idx - 1]
        except (KeyError, ValueError, IndexError) as exc:
            yield Skip(str(image.get("file_name", "?")), f"image entry without a usable cam_idx/frame_idx ({exc!r})")
            continue
        if (split.camera is None or camera_id == split.camera) and frame_idx % every == 0:
            selected.append((f"{camera_id}_{frame_idx:06d}", cam_idx, frame_idx, image))
    selected.sort(key=lambda item: item[0])
    for view, cam_idx, frame_idx, image in selected:
        key = make_key(SOURCE, unit.name, view)
        try:
            camera = cameras[str(cam_idx)]
            R = np.asarray(camera["R"], np.float64).reshape(3, 3)
            t = np.asarray(camera["t"], np.float64).reshape(3)
            (fx, fy), (cx, cy) = np.asarray(camera["f"], np.float64), np.asarray(camera["c"], np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise UnitError(str(files["camera"]), f"no usable camera {cam_idx} (R, t, f, c): {exc!r}") from exc
        try:
            world = np.asarray(joints_3d[str(action)][str(subaction)][str(frame_idx)], np.float64)
        except (KeyError, TypeError) as exc:
            yield Skip(key, "no 3D joints for this frame in the joint_3d file", str(files["joint_3d"]))
            del exc
            continue
        if world.shape != (17, 3) or not np.isfinite(world).all():
            yield Skip(key, f"3D joints of shape {world.shape} (expected 17 × 3, finite)", str(files["joint_3d"]))
            continue
        points = (world @ R.T + t) / 1000.0  # world mm → camera frame, metres
        if (points[:, 2] <= 0).any():
            yield Skip(key, "joints behind the camera", str(files["joint_3d"]))
            continue
        K_frame = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        annotation = annotations.get(int(image.get("id", -1)))
        try:
            x, y, w, h = (float(v) for v in annotation["bbox"])
            crop = square_crop((x, y, x + w, y + h))
        except (TypeError, KeyError, ValueError):
            yield Skip(key, "no usable bbox in the data file", str(files["data"]))
            continue
        if crop is None:
            yield Skip(key, "person box too small", str(files["data"]))
            continue
        path = root / "images" / str(image.get("file_name", ""))
        frame = read_frame(path)
        if frame is None:
            yield Skip(key, "missing or unreadable image file", str(path))
            continue
        joints, valid = to_coco17(points, _H36M_TO_COCO)
        K_crop = crop.intrinsics(K_frame, image_size)
        body = BodyRecord(
            backend="none",
            joints=joints,
            joints_valid=valid,
            joints_2d=np.where(valid[:, None] > 0, project(np.where(valid[:, None] > 0, joints, 1.0), K_crop), 0.0),
            joints_2d_valid=valid,
            eval_joints=points[_H36M_TO_LSP14],
            eval_joint_set="lsp14",
        )
        meta = {"image": str(image.get("file_name")), "camera_id": CAMERA_IDS[cam_idx - 1]}
        yield crop.sample(key, frame, K_frame, image_size, body, meta)
