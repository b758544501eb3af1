"""MPI-INF-3DHP → shards: 3D and 2D joints, no body mesh (``backend`` ``none``).

**Training set** (``split="train"``): ``root/S<s>/Seq<q>/annot.mat`` (MATLAB v5, read with
``scipy.io.loadmat``) holds one cell per camera of ``annot2`` (N × 56: 28 joints × (x, y)
pixels), ``annot3`` and ``univ_annot3`` (N × 84: 28 joints × (x, y, z), camera frame, mm);
``camera.calibration`` beside it holds each camera's ``intrinsic`` (4 × 4 row-major, pixels).
Frames come from ``imageFrames/video_<c>/frame_%06d.jpg`` (1-based) when extracted, else from
``imageSequence/video_<c>.avi``, decoded in order with OpenCV. One unit per subject, sequence and
camera (keys ``3dhp/S1_Seq1_c00/000120``, frame index 0-based); every 10th frame by default
(neighbouring frames of the 25/50 fps videos are nearly identical).

**Test set** (``split="test"``): ``root/mpi_inf_3dhp_test_set/TS<k>/annot_data.mat`` (or
``root/TS<k>/``), MATLAB v7.3, i.e. HDF5, read with ``h5py``. MATLAB writes arrays column-major and
h5py shows HDF5's row-major view, so every dimension comes out reversed: the MATLAB array
``annot2`` of size 2 × 17 × 1 × N reads as ``(N, 1, 17, 2)`` (frame, 1, joint, coordinate), and
``valid_frame`` (1 × N) as ``(N, 1)``; this reader expects exactly those shapes and the fixture
writer of the tests writes them. Frames are ``imageSequence/img_%06d.jpg`` (1-based); only frames
with ``valid_frame`` are converted. The test set ships no calibration file: the intrinsics of each
sequence are fitted to its own annotations (``annot2`` is the projection of ``annot3``: a linear
least-squares fit of ``fx, fy, cx, cy`` over its valid frames; the fit's rms error is in
``meta.json``, ``intrinsics_rms_px``). One unit per sequence (keys ``3dhp/TS1/000000``).

Targets: ``joints`` COCO-17 from ``annot3`` (metres, camera frame; shoulders, elbows, wrists, hips,
knees, ankles valid; the data set has no nose, eyes or ears: ``joints_valid`` 0 there),
``joints_2d`` from ``annot2`` (same validity), ``eval_joints`` the 17 joints of ``univ_annot3`` in
the test-set order (:data:`~munet.metrics.protocols.MPI3DHP17_NAMES`, ``mpi3dhp17``), metres, in
the camera frame as the file holds them (the height-normalised skeleton: root-relative use only,
which is what the 3DHP protocol does). The crop is the square around the 2D joints.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from munet.convert.frames import JOINT_BOX_FILL, Crop, coco17_map, joint_box, read_frame, square_crop, to_coco17
from munet.convert.output import ConvertError, ConvertReport, Skip, Unit, UnitError, write_units
from munet.data.schema import BodyRecord, SampleRecord, make_key
from munet.metrics.protocols import MPI3DHP17_NAMES

SOURCE = "3dhp"
"""First part of every key."""

MPI28_NAMES: tuple[str, ...] = (
    "spine3",
    "spine4",
    "spine2",
    "spine",
    "pelvis",
    "neck",
    "head",
    "head_top",
    "left_clavicle",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "left_hand",
    "right_clavicle",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "right_hand",
    "left_hip",
    "left_knee",
    "left_ankle",
    "left_foot",
    "left_toe",
    "right_hip",
    "right_knee",
    "right_ankle",
    "right_foot",
    "right_toe",
)
"""The 28 joints of the training annotations, in their order."""

MPI28_TO_17 = np.array([MPI28_NAMES.index(name) for name in MPI3DHP17_NAMES])
"""Indices into the 28 training joints of the 17 test-set joints (0-based; ``[7, 5, 14, …]``)."""

SPLITS = ("train", "test")
"""``train``: S1–S8; ``test``: TS1–TS6."""
DEFAULT_EVERY = {"train": 10, "test": 1}
"""Frame step per split when none is given."""

_MPI28_TO_COCO = coco17_map(MPI28_NAMES)
_MPI17_TO_COCO = coco17_map(MPI3DHP17_NAMES)
_CALIBRATION_HEADER = "Skeletool Camera Calibration File V1.0"


def convert_3dhp(
    root: str | Path,
    out: str,
    *,
    split: str = "test",
    image_size: int = 256,
    every: int | None = None,
    cameras: Sequence[int] | None = None,
    samples_per_shard: int = 256,
    overwrite: bool = False,
    workers: int = 0,
) -> ConvertReport:
    """Convert MPI-INF-3DHP (see the module docstring) into shards.

    Args:
        root: the data set folder (``S1`` … ``S8``, and/or ``mpi_inf_3dhp_test_set``).
        out: output shard folder or URI.
        split: ``train`` or ``test``.
        image_size: side S of the stored crops, pixels.
        every: keep every n-th frame (default :data:`DEFAULT_EVERY`).
        cameras: training cameras to convert (default: every camera of the calibration file).
        samples_per_shard: most samples per shard.
        overwrite: replace what ``out`` holds.
        workers: convert this many units at once as Ray tasks (see
            :func:`~munet.convert.output.write_units`); 0: in this process.

    Raises:
        ConvertError: ``root`` holds no sequence of the split.
        FileExistsError: ``out`` holds another conversion (without ``overwrite``).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    every = DEFAULT_EVERY[split] if every is None else int(every)
    if every <= 0:
        raise ValueError(f"every must be positive, got {every}")
    root = Path(root).expanduser()
    settings: dict[str, Any] = {"split": split, "image_size": image_size, "every": every}
    if split == "train":
        settings["cameras"] = None if cameras is None else sorted(int(c) for c in cameras)
        units = _train_units(root, cameras)
        convert = lambda unit: _train_unit(unit, every, image_size)  # noqa: E731
    else:
        units = _test_units(root)
        convert = lambda unit: _test_unit(unit, every, image_size)  # noqa: E731
    return write_units(
        out, SOURCE, settings, units, convert, samples_per_shard=samples_per_shard, overwrite=overwrite, workers=workers
    )


def _record(
    key: str,
    frame: np.ndarray,
    crop: Crop,
    K_frame: np.ndarray,
    image_size: int,
    points: np.ndarray,
    pixels: np.ndarray,
    mapping: np.ndarray,
    eval_points: np.ndarray,
    meta: dict[str, Any],
) -> SampleRecord:
    """A sample from a frame and its joints (``points`` metres camera frame, ``pixels`` frame px)."""
    joints, valid = to_coco17(points, mapping)
    joints_2d, _ = to_coco17(pixels, mapping)
    body = BodyRecord(
        backend="none",
        joints=joints,
        joints_valid=valid,
        joints_2d=crop.pixels(joints_2d, image_size) * valid[:, None],
        joints_2d_valid=valid,
        eval_joints=eval_points,
        eval_joint_set="mpi3dhp17",
    )
    return crop.sample(key, frame, K_frame, image_size, body, meta)


# --- training set -----------------------------------------------------------------------------


def read_calibration(path: Path) -> dict[int, np.ndarray]:
    """``{camera: K (3, 3)}`` from a ``camera.calibration`` file.

    Raises:
        UnitError: missing file, wrong header, or a camera without 16 intrinsic numbers.
    """
    if not path.is_file():
        raise UnitError(str(path), "missing (each training sequence has a camera.calibration beside annot.mat)")
    lines = path.read_text(encoding="latin-1").splitlines()
    if not lines or lines[0].strip() != _CALIBRATION_HEADER:
        raise UnitError(str(path), f"not a camera calibration file (first line should be {_CALIBRATION_HEADER!r})")
    cameras: dict[int, np.ndarray] = {}
    current = None
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "name":
            current = int(fields[1])
        elif fields[0] == "intrinsic" and current is not None:
            try:
                values = np.array([float(v) for v in fields[1:]])
            except ValueError:
                values = np.zeros(0)
            if values.shape != (16,):
                raise UnitError(str(path), f"camera {current}: intrinsic needs 16 numbers (4 × 4 row-major)")
            cameras[current] = values.reshape(4, 4)[:3, :3]
    if not cameras:
        raise UnitError(str(path), "holds no camera (name … intrinsic …)")
    return cameras


def _train_units(root: Path, cameras: Sequence[int] | None) -> list[Unit]:
    sequences = sorted(root.glob("S[0-9]*/Seq[0-9]*"), key=lambda p: (int(p.parent.name[1:]), p.name))
    if not sequences:
        raise ConvertError(f"{root} holds no training sequence: expected S<s>/Seq<q>/annot.mat (S1 … S8)")
    units = []
    for folder in sequences:
        name = f"{folder.parent.name}_{folder.name}"
        try:
            calibration = read_calibration(folder / "camera.calibration")
        except UnitError as exc:
            units.append(Unit(name, str(folder), exc))
            continue
        for camera in sorted(calibration if cameras is None else cameras):
            units.append(Unit(f"{name}_c{camera:02d}", str(folder), (folder, camera)))
    return units


@functools.lru_cache(maxsize=1)
def _load_annot(path: Path) -> dict[str, np.ndarray]:
    """The per-camera cells of ``annot.mat`` as ``{name: (cameras,) object array}``."""
    import scipy.io

    if not path.is_file():
        raise UnitError(str(path), "missing (each training sequence has annot.mat)")
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: say which and why
        raise UnitError(str(path), f"not a readable MATLAB v5 .mat file ({type(exc).__name__}: {exc})") from exc
    missing = [name for name in ("annot2", "annot3", "univ_annot3") if name not in mat]
    if missing:
        raise UnitError(str(path), f"lacks {missing} (per-camera cells of 28-joint annotations)")
    return {name: np.asarray(mat[name]).ravel() for name in ("annot2", "annot3", "univ_annot3")}


def _camera_arrays(path: Path, camera: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    annot = _load_annot(path)
    if camera >= len(annot["annot2"]):
        raise UnitError(str(path), f"holds {len(annot['annot2'])} camera cells, no camera {camera}")
    try:
        a2 = np.asarray(annot["annot2"][camera], np.float64).reshape(-1, 28, 2)
        a3 = np.asarray(annot["annot3"][camera], np.float64).reshape(-1, 28, 3)
        u3 = np.asarray(annot["univ_annot3"][camera], np.float64).reshape(-1, 28, 3)
    except ValueError as exc:
        raise UnitError(str(path), f"camera {camera}: annotations are not N × 56 / N × 84 ({exc})") from exc
    if not len(a2) == len(a3) == len(u3):
        raise UnitError(str(path), f"camera {camera}: annot2, annot3, univ_annot3 differ in frame count")
    return a2, a3, u3


def _video_frames(folder: Path, camera: int, count: int, every: int) -> Iterator[tuple[int, np.ndarray | None, str]]:
    """``(index, RGB frame or None, file)`` for frames ``0, every, 2·every …`` below ``count``."""
    extracted = folder / "imageFrames" / f"video_{camera}"
    if extracted.is_dir():
        for index in range(0, count, every):
            path = extracted / f"frame_{index + 1:06d}.jpg"
            yield index, read_frame(path), str(path)
        return
    video = folder / "imageSequence" / f"video_{camera}.avi"
    if not video.is_file():
        raise UnitError(str(video), f"missing (nor are its frames extracted in {extracted}/frame_%06d.jpg)")
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise UnitError(str(video), "OpenCV cannot open this video")
    try:
        for index in range(count):
            if not capture.grab():
                for rest in range(index + (-index % every), count, every):
                    yield rest, None, str(video)
                return
            if index % every == 0:
                ok, image = capture.retrieve()
                yield index, (cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if ok else None), str(video)
    finally:
        capture.release()


def _train_unit(unit: Unit, every: int, image_size: int) -> Iterator[SampleRecord | Skip]:
    if isinstance(unit.payload, UnitError):
        raise unit.payload
    folder, camera = unit.payload
    K_frame = read_calibration(folder / "camera.calibration").get(camera)
    if K_frame is None:
        raise UnitError(str(folder / "camera.calibration"), f"has no camera {camera}")
    a2, a3, u3 = _camera_arrays(folder / "annot.mat", camera)
    for index, frame, file in _video_frames(folder, camera, len(a2), every):
        key = make_key(SOURCE, unit.name, f"{index:06d}")
        if frame is None:
            yield Skip(key, "missing or unreadable frame (video ended early or frame file missing)", file)
            continue
        box = joint_box(a2[index], np.ones(28))
        crop = None if box is None else square_crop(box, JOINT_BOX_FILL)
        if crop is None or (a3[index, :, 2] <= 0).any():
            yield Skip(key, "no usable joints (degenerate box or joints behind the camera)", file)
            continue
        yield _record(
            key, frame, crop, K_frame, image_size, a3[index] / 1000.0, a2[index], _MPI28_TO_COCO,
            u3[index, MPI28_TO_17] / 1000.0, {"camera_id": camera, "frame": index},
        )  # fmt: skip


# --- test set ---------------------------------------------------------------------------------


def _test_units(root: Path) -> list[Unit]:
    base = root / "mpi_inf_3dhp_test_set" if (root / "mpi_inf_3dhp_test_set").is_dir() else root
    folders = sorted(
        (p for p in base.glob("TS[0-9]*") if re.fullmatch(r"TS\d+", p.name)), key=lambda p: int(p.name[2:])
    )
    if not folders:
        raise ConvertError(
            f"{root} holds no test sequence: expected mpi_inf_3dhp_test_set/TS<k>/annot_data.mat (TS1 … TS6)"
        )
    return [Unit(folder.name, str(folder / "annot_data.mat"), folder) for folder in folders]


def _load_test_annot(path: Path) -> dict[str, np.ndarray]:
    try:
        import h5py
    except ImportError as exc:
        raise ConvertError(f"reading {path} (MATLAB v7.3, HDF5) needs h5py: pip install h5py") from exc
    if not path.is_file():
        raise UnitError(str(path), "missing (each test sequence has annot_data.mat)")
    try:
        with h5py.File(path, "r") as mat:
            data = {name: np.asarray(mat[name]) for name in ("annot2", "annot3", "univ_annot3", "valid_frame")}
            if "activity_annotation" in mat:
                data["activity_annotation"] = np.asarray(mat["activity_annotation"]).ravel()
    except KeyError as exc:
        raise UnitError(str(path), f"lacks {exc} (annot2, annot3, univ_annot3 and valid_frame are needed)") from exc
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: say which and why
        raise UnitError(str(path), f"not a readable MATLAB v7.3 (HDF5) file ({type(exc).__name__}: {exc})") from exc
    count = data["valid_frame"].size
    for name, joints in (("annot2", 2), ("annot3", 3), ("univ_annot3", 3)):
        if data[name].shape != (count, 1, 17, joints):
            raise UnitError(
                str(path),
                f"{name} has shape {data[name].shape} as h5py reads it; expected ({count}, 1, 17, {joints}) "
                f"(MATLAB's {joints} × 17 × 1 × N)",
            )
        data[name] = data[name][:, 0].astype(np.float64)
    data["valid_frame"] = data["valid_frame"].ravel() > 0
    return data


def fit_intrinsics(points: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """Intrinsics ``K`` (3, 3) (no skew) that project camera-frame ``points`` (N, 3) onto
    ``pixels`` (N, 2) best, and the rms error in pixels (two linear least-squares fits:
    ``u = fx · x/z + cx``, ``v = fy · y/z + cy``)."""
    normalised = points[:, :2] / points[:, 2:3]
    K = np.eye(3)
    residuals = []
    for axis in (0, 1):
        A = np.c_[normalised[:, axis], np.ones(len(points))]
        (focal, centre), *_ = np.linalg.lstsq(A, pixels[:, axis], rcond=None)
        K[axis, axis], K[axis, 2] = focal, centre
        residuals.append(A @ (focal, centre) - pixels[:, axis])
    return K, float(np.sqrt(np.mean(np.square(residuals)) * 2))


def _test_unit(unit: Unit, every: int, image_size: int) -> Iterator[SampleRecord | Skip]:
    folder: Path = unit.payload
    path = folder / "annot_data.mat"
    data = _load_test_annot(path)
    valid = data["valid_frame"]
    usable = valid & (data["annot3"][:, :, 2] > 0).all(axis=1)
    if usable.sum() < 2:
        raise UnitError(str(path), "fewer than 2 valid frames: cannot fit the sequence's intrinsics")
    K_frame, rms = fit_intrinsics(data["annot3"][usable].reshape(-1, 3), data["annot2"][usable].reshape(-1, 2))
    for index in range(0, len(valid), every):
        key = make_key(SOURCE, unit.name, f"{index:06d}")
        image_path = folder / "imageSequence" / f"img_{index + 1:06d}.jpg"
        if not valid[index]:
            yield Skip(key, "not a valid frame (valid_frame = 0)", str(path))
            continue
        if not usable[index]:
            yield Skip(key, "joints behind the camera", str(path))
            continue
        box = joint_box(data["annot2"][index], np.ones(17))
        crop = None if box is None else square_crop(box, JOINT_BOX_FILL)
        if crop is None:
            yield Skip(key, "degenerate joint box", str(path))
            continue
        frame = read_frame(image_path)
        if frame is None:
            yield Skip(key, "missing or unreadable image file", str(image_path))
            continue
        meta: dict[str, Any] = {"frame": index, "intrinsics_rms_px": round(rms, 3)}
        if "activity_annotation" in data and index < len(data["activity_annotation"]):
            meta["activity"] = int(data["activity_annotation"][index])
        yield _record(
            key, frame, crop, K_frame, image_size, data["annot3"][index] / 1000.0, data["annot2"][index],
            _MPI17_TO_COCO, data["univ_annot3"][index] / 1000.0, meta,
        )  # fmt: skip
