"""3DPW → shards: the gendered SMPL body mesh, its COCO-17 joints and the 2D joints; no mask or cloth.

Input: ``root/sequenceFiles/<split>/<sequence>.pkl`` (Python 2 pickles, read by the restricted
unpickler of :mod:`munet.safe_pickle` with ``latin1``) and
``root/imageFiles/<sequence>/image_%05d.jpg``. Per actor and frame: the SMPL body of the actor's
gender (``poses`` (N, 72), the first 10 ``betas``, ``trans``) is posed in the world frame, then
moved into the camera frame by ``cam_poses`` (world → camera, metres). One unit per sequence (keys
``3dpw/<sequence>/<frame:05d>_<actor>``).

Stored per sample (``backend`` ``smpl``): ``vertices`` (6890, 3) camera frame, metres; ``pose``
(72,) with the global orientation turned into the camera frame (so ``body(pose, shape)`` equals
``vertices`` up to a translation: meshes are compared pelvis-aligned); ``shape`` (10,); ``joints``
COCO-17 from the body model's own regressor (all valid); ``joints_2d`` from ``poses2d`` (OpenPose
COCO-18 → COCO-17, valid where the confidence is above 0), in crop pixels. The crop is the square
around the valid 2D joints (:data:`~munet.convert.frames.JOINT_BOX_FILL`). Frames whose
``campose_valid`` is false, or whose ``poses2d`` are all zero, are skipped and counted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from munet.convert.bodies import GenderedBodies
from munet.convert.frames import JOINT_BOX_FILL, coco17_map, joint_box, read_frame, square_crop, to_coco17
from munet.convert.output import ConvertError, ConvertReport, Skip, Unit, UnitError, write_units
from munet.data.schema import BodyRecord, SampleRecord, make_key
from munet.safe_pickle import load_restricted

SOURCE = "3dpw"
"""First part of every key."""

SPLITS = ("train", "validation", "test")
"""The folders of ``sequenceFiles``."""

OPENPOSE18_NAMES: tuple[str, ...] = (
    "nose",
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
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)
"""The 18 joints of ``poses2d`` (OpenPose's COCO-18), in order."""

REQUIRED_KEYS = (
    "sequence",
    "genders",
    "betas",
    "poses",
    "trans",
    "poses2d",
    "cam_poses",
    "campose_valid",
    "cam_intrinsics",
)
"""Keys of a sequence file this converter reads."""

_OPENPOSE_TO_COCO = coco17_map(OPENPOSE18_NAMES)
_GENDERS = {"m": "male", "f": "female", "male": "male", "female": "female"}


def convert_3dpw(
    root: str | Path,
    out: str,
    *,
    body_models: str | os.PathLike | None,
    split: str = "test",
    image_size: int = 256,
    every: int = 1,
    samples_per_shard: int = 256,
    overwrite: bool = False,
    workers: int = 0,
) -> ConvertReport:
    """Convert one split of 3DPW (see the module docstring) into shards.

    Args:
        root: the 3DPW folder (``sequenceFiles/``, ``imageFiles/``).
        out: output shard folder or URI.
        body_models: folder with ``SMPL_MALE`` and ``SMPL_FEMALE`` (``.npz`` or ``.pkl``; see
            :func:`munet.body.smplx_backend.find_model_file`).
        split: ``train``, ``validation`` or ``test``.
        image_size: side S of the stored crops, pixels.
        every: keep every n-th frame.
        samples_per_shard: most samples per shard.
        overwrite: replace what ``out`` holds.
        workers: convert this many units at once as Ray tasks (see
            :func:`~munet.convert.output.write_units`); 0: in this process.

    Raises:
        ConvertError: no sequence file, or the body models are missing or unreadable (the message
            names the file expected and where).
        FileExistsError: ``out`` holds another conversion (without ``overwrite``).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if every <= 0:
        raise ValueError(f"every must be positive, got {every}")
    root = Path(root).expanduser()
    folder = root / "sequenceFiles" / split
    files = sorted(folder.glob("*.pkl"))
    if not files:
        raise ConvertError(f"{folder} holds no sequence file: expected 3DPW's sequenceFiles/{split}/<sequence>.pkl")
    bodies = GenderedBodies(body_models, "3DPW")
    units = [Unit(path.stem, str(path), path) for path in files]
    settings: dict[str, Any] = {"split": split, "image_size": image_size, "every": every}
    return write_units(
        out,
        SOURCE,
        settings,
        units,
        lambda unit: _sequence(root, unit, bodies, image_size, every),
        samples_per_shard=samples_per_shard,
        overwrite=overwrite,
        workers=workers,
    )


def _per_actor(data: dict[str, Any], key: str, actors: int, path: Path) -> list[np.ndarray]:
    value = data[key]
    if len(value) != actors:
        raise UnitError(str(path), f"{key!r} holds {len(value)} entries for {actors} actors")
    return [np.asarray(v, np.float64) for v in value]


def _load_sequence(path: Path) -> dict[str, Any]:
    """The checked contents of a sequence file (``UnitError`` naming the file otherwise)."""
    try:
        data = load_restricted(path, encoding="latin1")
    except (ValueError, OSError) as exc:
        raise UnitError(str(path), str(exc)) from exc
    if not isinstance(data, dict):
        raise UnitError(str(path), f"holds a {type(data).__name__}, not 3DPW's dictionary")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise UnitError(str(path), f"lacks the key(s) {missing}; a 3DPW sequence file holds {list(REQUIRED_KEYS)}")
    actors = len(data["genders"])
    cam_poses = np.asarray(data["cam_poses"], np.float64)
    frames = len(cam_poses)
    if cam_poses.shape != (frames, 4, 4):
        raise UnitError(str(path), f"cam_poses has shape {cam_poses.shape}, expected (N, 4, 4)")
    K = np.asarray(data["cam_intrinsics"], np.float64)
    if K.shape != (3, 3):
        raise UnitError(str(path), f"cam_intrinsics has shape {K.shape}, expected (3, 3)")
    out = {"K": K, "cam_poses": cam_poses, "frames": frames, "actors": actors}
    out["genders"] = [_GENDERS.get(str(g).strip().lower()) for g in data["genders"]]
    if None in out["genders"]:
        raise UnitError(str(path), f"genders {data['genders']} must be 'm' or 'f' per actor")
    expected = {"poses": (frames, 72), "trans": (frames, 3), "poses2d": (frames, 3, 18), "campose_valid": (frames,)}
    for key, shape in expected.items():
        out[key] = _per_actor(data, key, actors, path)
        for actor, value in enumerate(out[key]):
            if value.shape != shape:
                raise UnitError(str(path), f"{key}[{actor}] has shape {value.shape}, expected {shape}")
    out["betas"] = [b[:10] for b in _per_actor(data, "betas", actors, path)]
    if any(b.shape != (10,) for b in out["betas"]):
        raise UnitError(str(path), "betas must hold at least 10 values per actor")
    ids = data.get("img_frame_ids")
    out["img_frame_ids"] = np.arange(frames) if ids is None else np.asarray(ids, np.int64).reshape(-1)
    if len(out["img_frame_ids"]) != frames:
        raise UnitError(str(path), f"img_frame_ids holds {len(out['img_frame_ids'])} ids for {frames} frames")
    out["sequence"] = str(data["sequence"])
    return out


def _rotate_orientation(pose: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """``pose`` (72,) with its global orientation (axis-angle, first 3) pre-multiplied by ``rotation``."""
    turned = pose.copy()
    global_matrix = cv2.Rodrigues(np.ascontiguousarray(pose[:3]))[0]
    turned[:3] = cv2.Rodrigues(rotation @ global_matrix)[0].ravel()
    return turned


def _sequence(
    root: Path, unit: Unit, bodies: GenderedBodies, image_size: int, every: int
) -> Iterator[SampleRecord | Skip]:
    path: Path = unit.payload
    data = _load_sequence(path)
    images = root / "imageFiles" / unit.name
    for frame_index in range(0, data["frames"], every):
        image_path = images / f"image_{int(data['img_frame_ids'][frame_index]):05d}.jpg"
        frame: np.ndarray | None = None
        for actor in range(data["actors"]):
            key = make_key(SOURCE, unit.name, f"{frame_index:05d}_{actor}")
            if not data["campose_valid"][actor][frame_index] > 0:
                yield Skip(key, "camera pose not valid for this actor (campose_valid = 0)", str(path))
                continue
            poses2d = data["poses2d"][actor][frame_index]  # (3, 18): x, y, confidence
            if not poses2d.any():
                yield Skip(key, "no 2D joints (poses2d all zero)", str(path))
                continue
            pixels, present = to_coco17(poses2d[:2].T, _OPENPOSE_TO_COCO)
            confidence, _ = to_coco17(poses2d[2:].T, _OPENPOSE_TO_COCO)
            valid_2d = present * (confidence[:, 0] > 0)
            box = joint_box(pixels, valid_2d)
            crop = None if box is None else square_crop(box, JOINT_BOX_FILL)
            if crop is None:
                yield Skip(key, "fewer than two 2D joints, or a person box too small", str(path))
                continue
            if frame is None:
                frame = read_frame(image_path)
            if frame is None:
                yield Skip(key, "missing or unreadable image file", str(image_path))
                continue
            body = bodies.get(data["genders"][actor])
            pose = data["poses"][actor][frame_index]
            with torch.no_grad():
                world = (
                    body(
                        torch.as_tensor(pose[None], dtype=torch.float32),
                        torch.as_tensor(data["betas"][actor][None], dtype=torch.float32),
                        torch.as_tensor(data["trans"][actor][frame_index][None], dtype=torch.float32),
                    )
                    .vertices[0]
                    .double()
                )
            extrinsics = data["cam_poses"][frame_index]
            rotation, translation = extrinsics[:3, :3], extrinsics[:3, 3]
            vertices = world.numpy() @ rotation.T + translation
            if (vertices[:, 2] <= 0).any():
                yield Skip(key, "body behind the camera", str(path))
                continue
            joints = body.regress_joints(torch.as_tensor(vertices[None], dtype=torch.float32))[0].double().numpy()
            record = BodyRecord(
                backend="smpl",
                pose=_rotate_orientation(pose, rotation),
                shape=data["betas"][actor],
                vertices=vertices,
                joints=joints,
                joints_2d=crop.pixels(pixels, image_size) * valid_2d[:, None],
                joints_2d_valid=valid_2d,
            )
            meta = {
                "sequence": data["sequence"],
                "actor": actor,
                "gender": data["genders"][actor],
                "frame": frame_index,
            }
            yield crop.sample(key, frame, data["K"], image_size, record, meta)
