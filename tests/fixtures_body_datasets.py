"""Tiny fabricated copies of 3DPW, Human3.6M and MPI-INF-3DHP in their real on-disk formats, for the
``munet convert`` tests. Frames are small noise images; 2D joints are the projections of the 3D
joints through the data set's own camera, so a converter's stored 2D joints can be checked
against its stored 3D joints and crop intrinsics."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np

FRAME_W, FRAME_H = 160, 120
"""Size of the fabricated frames, pixels."""


def skeleton(count: int, rng: np.random.Generator, depth: float = 4.0) -> np.ndarray:
    """``(count, 3)`` points of a person-sized cloud ~1.6 m tall, ``depth`` metres in front of a
    camera (camera frame, metres)."""
    points = rng.uniform([-0.25, -0.8, -0.15], [0.25, 0.8, 0.15], size=(count, 3))
    return points + [0.0, 0.0, depth]


def write_frame(path: Path, seed: int, width: int = FRAME_W, height: int = FRAME_H) -> None:
    """A noise JPEG frame of ``width × height``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    cv2.imwrite(str(path), image)


def intrinsics(focal: float = 60.0, width: int = FRAME_W, height: int = FRAME_H) -> np.ndarray:
    """Frame intrinsics, principal point near the centre."""
    return np.array([[focal, 0.0, width / 2 + 1.5], [0.0, focal * 1.01, height / 2 - 2.0], [0.0, 0.0, 1.0]])


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points ``(..., 3)`` → pixels ``(..., 2)``."""
    homogeneous = points @ K.T
    return homogeneous[..., :2] / homogeneous[..., 2:3]


# --- Human3.6M --------------------------------------------------------------------------------

H36M_CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")


def write_h36m_json(root: Path, subjects: tuple[int, ...] = (9,), frames: int = 11) -> dict:
    """The COCO-style JSON form for ``subjects``: one action (2), subaction 1, cameras 1 and 4,
    frames ``0 … frames-1``; returns ``{(subject, cam_idx, frame): camera-frame joints (17, 3) mm}``."""
    rng = np.random.default_rng(1)
    annotations = root / "annotations"
    annotations.mkdir(parents=True, exist_ok=True)
    truth = {}
    for subject in subjects:
        cameras, images, annots, joints = {}, [], [], {"2": {"1": {}}}
        for cam_idx in (1, 4):
            angle = 0.3 * cam_idx
            R = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
            cameras[str(cam_idx)] = {
                "R": R.tolist(),
                "t": [100.0, -50.0, 4000.0],
                "f": [60.0, 61.0],
                "c": [81.5, 58.0],
            }
        for frame in range(frames):
            world = rng.uniform([-250, -800, -150], [250, 800, 150], size=(17, 3))
            world[1] = [-1500.0, 0.0, 0.0] if frame == 0 else world[1]  # a known joint for the unit check
            joints["2"]["1"][str(frame)] = world.tolist()
            for cam_idx in (1, 4):
                cam = cameras[str(cam_idx)]
                camera_frame = world @ np.array(cam["R"]).T + cam["t"]
                truth[(subject, cam_idx, frame)] = camera_frame
                K = np.array([[60.0, 0, 81.5], [0, 61.0, 58.0], [0, 0, 1]])
                pixels = project(camera_frame, K)
                low, high = pixels.min(0), pixels.max(0)
                image_id = len(images)
                folder = f"s_{subject:02d}_act_02_subact_01_ca_{cam_idx:02d}"
                name = f"{folder}/{folder}_{frame + 1:06d}.jpg"
                images.append(
                    {
                        "id": image_id,
                        "file_name": name,
                        "width": FRAME_W,
                        "height": FRAME_H,
                        "subject": subject,
                        "action_name": "Directions",
                        "action_idx": 2,
                        "subaction_idx": 1,
                        "cam_idx": cam_idx,
                        "frame_idx": frame,
                    }
                )
                annots.append({"id": image_id, "image_id": image_id, "bbox": [*low.tolist(), *(high - low).tolist()]})
                write_frame(root / "images" / name, seed=image_id)
        data = {"images": images, "annotations": annots}
        for kind, value in (("data", data), ("camera", cameras), ("joint_3d", joints)):
            (annotations / f"Human36M_subject{subject}_{kind}.json").write_text(json.dumps(value))
    return truth


H36M_K = {"60457274": (1145.51, 1144.77, 514.97, 501.88)}


def write_h36m_npz(root: Path, count: int = 4, with_part: bool = True, name: str = "h36m_valid_p2.npz") -> dict:
    """A SPIN-style npz (imgname, center, scale, S root-centred metres with visibility, optionally
    part) and its frames (1000 × 1000, the real H36M size, so the real intrinsics apply).
    Returns the arrays written plus ``translation`` (the hidden root positions)."""
    rng = np.random.default_rng(2)
    fx, fy, cx, cy = H36M_K["60457274"]
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    imgnames, centers, scales, S, parts, translations = [], [], [], [], [], []
    for index in range(count):
        points = skeleton(24, rng, depth=5.0)
        translation = points[14].copy()
        visible = np.ones(24)
        visible[17:] = 0  # face joints invisible, as in SPIN's H36M files
        pixels = project(points, K)
        low, high = pixels.min(0), pixels.max(0)
        imgname = f"images/S9_Directions_1.60457274_{index * 5 + 1:06d}.jpg"
        write_frame(root / imgname, seed=index, width=1000, height=1000)
        imgnames.append(imgname)
        centers.append((low + high) / 2)
        scales.append(1.2 * float((high - low).max()) / 200.0)
        S.append(np.c_[points - translation, visible])
        parts.append(np.c_[pixels, np.ones(24)])
        translations.append(translation)
    arrays = {
        "imgname": np.array(imgnames),
        "center": np.array(centers),
        "scale": np.array(scales),
        "S": np.array(S),
    }
    if with_part:
        arrays["part"] = np.array(parts)
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / name, **arrays)
    return {**arrays, "translation": np.array(translations)}


# --- MPI-INF-3DHP -----------------------------------------------------------------------------


def write_3dhp_train(root: Path, frames: int = 6, cameras: int = 2, extract: bool = False) -> dict:
    """``root/S1/Seq1``: ``annot.mat`` (v5, per-camera cells of shape (cameras, 1)),
    ``camera.calibration`` and ``imageSequence/video_<c>.avi`` (MJPG); returns the annot3 cells
    (mm) by camera."""
    import scipy.io

    rng = np.random.default_rng(3)
    folder = root / "S1" / "Seq1"
    (folder / "imageSequence").mkdir(parents=True, exist_ok=True)
    cells = {name: np.empty((cameras, 1), dtype=object) for name in ("annot2", "annot3", "univ_annot3")}
    lines = ["Skeletool Camera Calibration File V1.0"]
    for camera in range(cameras):
        K = intrinsics(focal=55.0 + camera)
        lines += [
            f"name          {camera}",
            "  sensor      10 10",
            f"  size        {FRAME_W} {FRAME_H}",
            "  animated    0",
            "  intrinsic   "
            + " ".join(f"{v:g}" for v in np.pad(K, ((0, 1), (0, 1))).ravel() + np.diag([0, 0, 0, 1]).ravel()),
            "  extrinsic   " + " ".join(f"{v:g}" for v in np.eye(4).ravel()),
            "  radial      0",
        ]
        a3 = np.stack([skeleton(28, rng) * 1000.0 for _ in range(frames)])
        a3[0, 4] = [0.0, 0.0, 1500.0] if camera == 0 else a3[0, 4]  # a known pelvis for the unit check
        a2 = project(a3, K)
        cells["annot3"][camera, 0] = a3.reshape(frames, 84)
        cells["univ_annot3"][camera, 0] = (a3 * 0.9).reshape(frames, 84)
        cells["annot2"][camera, 0] = a2.reshape(frames, 56)
        if extract:
            for index in range(frames):
                write_frame(folder / "imageFrames" / f"video_{camera}" / f"frame_{index + 1:06d}.jpg", seed=index)
        else:
            writer = cv2.VideoWriter(
                str(folder / "imageSequence" / f"video_{camera}.avi"),
                cv2.VideoWriter_fourcc(*"MJPG"),
                25,
                (FRAME_W, FRAME_H),
            )
            for index in range(frames):
                writer.write(np.random.default_rng(index).integers(0, 255, (FRAME_H, FRAME_W, 3), dtype=np.uint8))
            writer.release()
    (folder / "camera.calibration").write_text("\n".join(lines) + "\n")
    scipy.io.savemat(str(folder / "annot.mat"), {**cells, "frames": np.arange(frames)[:, None]})
    return {camera: cells["annot3"][camera, 0].reshape(frames, 28, 3) for camera in range(cameras)}


def write_3dhp_test(root: Path, sequence: int = 1, frames: int = 5, invalid: tuple[int, ...] = (1,)) -> dict:
    """``root/mpi_inf_3dhp_test_set/TS<k>``: ``annot_data.mat`` as MATLAB v7.3 writes it (HDF5 with
    a 512-byte MATLAB header; MATLAB's 2 × 17 × 1 × N ``annot2`` is stored so that h5py reads
    ``(N, 1, 17, 2)``, its 1 × N ``valid_frame`` as ``(N, 1)``) and ``imageSequence/img_%06d.jpg``.
    Returns the arrays as h5py shows them."""
    import h5py

    rng = np.random.default_rng(4)
    folder = root / "mpi_inf_3dhp_test_set" / f"TS{sequence}"
    K = intrinsics(focal=58.0)
    a3 = np.stack([skeleton(17, rng) * 1000.0 for _ in range(frames)])[:, None]  # (N, 1, 17, 3) mm
    a2 = project(a3, K)
    valid = np.ones((frames, 1))
    valid[list(invalid)] = 0
    arrays = {
        "annot2": a2,
        "annot3": a3,
        "univ_annot3": a3 * 0.9,
        "valid_frame": valid,
        "activity_annotation": np.full((frames, 1), 3.0),
        "bb_crop": np.zeros((4, frames)),
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "annot_data.mat"
    with h5py.File(path, "w", userblock_size=512) as mat:
        for name, value in arrays.items():
            mat.create_dataset(name, data=value).attrs["MATLAB_class"] = np.bytes_(b"double")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 HDF5 schema 1.00 ."
    with open(path, "r+b") as handle:
        handle.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")
    for index in range(frames):
        write_frame(folder / "imageSequence" / f"img_{index + 1:06d}.jpg", seed=index)
    return {**arrays, "K": K}


# --- 3DPW -------------------------------------------------------------------------------------

OPENPOSE_FROM_COCO = (0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
"""For each OpenPose COCO-18 joint, its COCO-17 index (-1: the neck, the shoulders' midpoint)."""


def write_smpl_models(folder: Path) -> Path:
    """``SMPL_MALE.pkl`` and ``SMPL_FEMALE.pkl`` (fake, the real format) in ``folder``."""
    from tests.fake_smpl import write_fake_smpl

    for seed, gender in enumerate(("MALE", "FEMALE")):
        write_fake_smpl(folder, seed=seed)
        (folder / "SMPL_NEUTRAL.pkl").rename(folder / f"SMPL_{gender}.pkl")
    return folder


def write_3dpw(
    root: Path, models: Path, sequence: str = "downtown_walk_00", frames: int = 3, split: str = "test"
) -> dict:
    """``root/sequenceFiles/<split>/<sequence>.pkl`` (protocol-2 pickle of the real keys) with two
    actors (male, female) and ``root/imageFiles/<sequence>/image_%05d.jpg``. ``poses2d`` are the
    projections of the actors' SMPL COCO joints (confidence 1, neck 0.5); frame 1 of actor 1 has
    ``campose_valid`` 0 and frame 2 of actor 0 all-zero ``poses2d``."""
    import torch

    from munet.body.smplx_backend import SMPLXBody

    rng = np.random.default_rng(5)
    K = intrinsics(focal=70.0)
    cam_poses = np.tile(np.eye(4), (frames, 1, 1))
    for index in range(frames):
        angle = 0.1 * index
        cam_poses[index, :3, :3] = [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
        cam_poses[index, :3, 3] = [0.05 * index, 0.0, 0.2]
    data: dict = {"sequence": sequence, "genders": ["m", "f"], "cam_intrinsics": K, "cam_poses": cam_poses}
    data["img_frame_ids"] = np.arange(frames)
    data.update(betas=[], poses=[], trans=[], poses2d=[], jointPositions=[], campose_valid=[], v_template_clothed=[])
    for actor, gender in enumerate(("male", "female")):
        body = SMPLXBody(models, model_type="smpl", gender=gender)
        betas = rng.normal(size=300) * 0.5
        poses = rng.normal(scale=0.2, size=(frames, 72))
        trans = np.tile([0.3 * actor - 0.15, 0.0, 4.0], (frames, 1))
        poses2d = np.zeros((frames, 3, 18))
        for index in range(frames):
            with torch.no_grad():
                output = body(
                    torch.tensor(poses[index : index + 1], dtype=torch.float32),
                    torch.tensor(betas[None, :10], dtype=torch.float32),
                    torch.tensor(trans[index : index + 1], dtype=torch.float32),
                )
            world = output.joints[0].double().numpy()
            camera = world @ cam_poses[index, :3, :3].T + cam_poses[index, :3, 3]
            pixels = project(camera, K)
            for openpose, coco in enumerate(OPENPOSE_FROM_COCO):
                point = pixels[[5, 6]].mean(0) if coco < 0 else pixels[coco]
                poses2d[index, :, openpose] = [*point, 0.5 if coco < 0 else 1.0]
        valid = np.ones(frames)
        if actor == 1 and frames > 1:
            valid[1] = 0
        if actor == 0 and frames > 2:
            poses2d[2] = 0
        data["betas"].append(betas)
        data["poses"].append(poses)
        data["trans"].append(trans)
        data["poses2d"].append(poses2d)
        data["jointPositions"].append(rng.normal(size=(frames, 72)))
        data["campose_valid"].append(valid)
        data["v_template_clothed"].append(rng.normal(size=(10, 3)))
    folder = root / "sequenceFiles" / split
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{sequence}.pkl", "wb") as handle:
        pickle.dump(data, handle, protocol=2)
    for index in range(frames):
        write_frame(root / "imageFiles" / sequence / f"image_{index:05d}.jpg", seed=index)
    return data
