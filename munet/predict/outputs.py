"""The files written for one predicted image.

Into its output folder:

- ``body.obj``, ``clothed.obj``: the meshes in the camera frame (OpenCV: x right, y down,
  z forward, metres), so that ``K`` of ``prediction.json`` projects them onto the image;
- ``scene.glb``: both meshes (body blue, clothed orange) in glTF's convention (y up, the person
  facing +z, towards the viewer): the camera frame turned 180° about x;
- ``overlay.png``: five panels of the crop at display size: the crop, the body and the clothed
  mesh rendered over it from the predicted camera, and both meshes turned 90° about the body's
  vertical axis (pelvis → mid-shoulders) around the pelvis, on a plain background;
- ``prediction.json``: intrinsics, crop box, weak camera, translation, COCO-17 joints in 3D and
  2D, timings, and how the fit to the person mask went (see :func:`prediction_record`).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import trimesh
from scipy.spatial.transform import Rotation

from munet.body import COCO17_NAMES, COCO17_PELVIS
from munet.data.camera import resize_intrinsics
from munet.data.render import Renderer
from munet.eval.overlay import BODY_COLOR, CLOTH_COLOR, label, overlay_mesh
from munet.geometry import project
from munet.predict.crop import DEFAULT_FOV_DEGREES, PersonCrop
from munet.predict.obj import obj_bytes
from munet.predict.predictor import Prediction

GLTF_FROM_CAMERA = np.diag([1.0, -1.0, -1.0])
"""OpenCV camera frame (y down, z forward) → glTF (y up, z towards the viewer)."""
SIDE_VIEW_DEGREES = 90.0
SIDE_BACKGROUND = 235
"""Grey level of the side views' plain background."""
PNG_SETTINGS = (cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP)
"""``overlay.png``'s encoding: fast deflate of row differences (half the size of OpenCV's default
settings, in about two thirds of the time)."""
_SHOULDERS = (COCO17_NAMES.index("left_shoulder"), COCO17_NAMES.index("right_shoulder"))


def pelvis_and_up(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pelvis (mid-hips) ``(3,)`` and the body's unit vertical axis ``(3,)`` (pelvis →
    mid-shoulders) of COCO-17 joints ``(17, 3)``."""
    pelvis = joints[list(COCO17_PELVIS)].mean(axis=0)
    up = joints[list(_SHOULDERS)].mean(axis=0) - pelvis
    return pelvis, up / max(float(np.linalg.norm(up)), 1e-9)


def turn_about_body(vertices: np.ndarray, joints: np.ndarray, degrees: float) -> np.ndarray:
    """``vertices`` (N, 3) turned by ``degrees`` about the body's vertical axis through its pelvis."""
    pelvis, up = pelvis_and_up(np.asarray(joints, dtype=np.float64))
    rotation = Rotation.from_rotvec(np.radians(degrees) * up).as_matrix()
    return (np.asarray(vertices, dtype=np.float64) - pelvis) @ rotation.T + pelvis


def _named_meshes(prediction: Prediction) -> tuple[tuple[str, np.ndarray, np.ndarray, tuple[float, float, float]], ...]:
    """``(name, vertices, faces, colour)`` of the body and the clothed mesh."""
    return (
        ("body", prediction.body_vertices, prediction.body_faces, BODY_COLOR),
        ("clothed", prediction.cloth_vertices, prediction.cloth_faces, CLOTH_COLOR),
    )


def overlay_picture(renderer: Renderer, crop: PersonCrop, prediction: Prediction) -> np.ndarray:
    """The ``(D, 5 D, 3)`` uint8 RGB overlay (panels: crop, body, clothed, body side, clothed side)."""
    size = renderer.image_size
    if crop.display.shape != (size, size, 3):
        raise ValueError(f"the display crop is {crop.display.shape}, the renderer draws {size}² pixels")
    K = resize_intrinsics(crop.K, size / crop.image.shape[0])
    plain = np.full_like(crop.display, SIDE_BACKGROUND)
    meshes = _named_meshes(prediction)
    panels = [label(crop.display, "input crop")]
    fitted = ", fitted to mask" if prediction.fit is not None else ""
    for name, vertices, faces, color in meshes:
        panels.append(label(overlay_mesh(renderer, crop.display, vertices, faces, K, color), name + fitted))
    for name, vertices, faces, color in meshes:
        turned = turn_about_body(vertices, prediction.joints, SIDE_VIEW_DEGREES)
        panels.append(label(overlay_mesh(renderer, plain, turned, faces, K, color, alpha=1.0), f"{name}, side"))
    return np.concatenate(panels, axis=1)


def _mesh(vertices: np.ndarray, faces: np.ndarray) -> trimesh.Trimesh:
    return trimesh.Trimesh(np.asarray(vertices, dtype=np.float64), np.asarray(faces), process=False)


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write a mesh (camera frame, metres) as Wavefront OBJ (:func:`munet.predict.obj.obj_bytes`)."""
    path.write_bytes(obj_bytes(vertices, faces))


def scene_glb(prediction: Prediction) -> bytes:
    """Both meshes as one binary glTF scene (geometries ``body`` and ``clothed``; glTF axes)."""
    scene = trimesh.Scene()
    for name, vertices, faces, color in _named_meshes(prediction):
        mesh = _mesh(np.asarray(vertices, dtype=np.float64) @ GLTF_FROM_CAMERA.T, faces)
        mesh.visual = trimesh.visual.TextureVisuals(
            material=trimesh.visual.material.PBRMaterial(name=name, baseColorFactor=[*color, 1.0])
        )
        scene.add_geometry(mesh, geom_name=name, node_name=name)
    return scene.export(file_type="glb")


def _rounded(array: np.ndarray, digits: int = 6) -> list:
    return np.round(np.asarray(array, dtype=np.float64), digits).tolist()


def prediction_record(path: Path, crop: PersonCrop, prediction: Prediction, info: dict[str, Any]) -> dict[str, Any]:
    """The content of ``prediction.json``.

    Keys: ``input``, ``image_size`` (original width, height), ``crop_box`` (left, top, right,
    bottom in pixel edges of the original image), ``crop_source``, ``input_size`` (S), ``K``
    (intrinsics of the S × S crop), ``K_image`` (of the original image), ``focal_source``,
    ``weak_camera`` (s, t_x, t_y), ``translation`` (camera-frame pelvis, m), ``joint_names``
    (COCO-17), ``joints_3d`` (camera frame, m), ``joints_2d`` (crop pixels), ``joints_2d_image``
    (original-image pixels), ``frame``, ``checkpoint``, ``step``, ``timings_ms``, ``fit`` (``null``
    when the meshes are the network's own, else the mask used and the
    :class:`~munet.fit.FitReport`: body vertices on the mask and outline gap before/after).
    """
    joints = np.asarray(prediction.joints, dtype=np.float64)
    drawable = bool((joints[:, 2] > 0).all())
    return {
        "input": str(path),
        "image_size": list(crop.original_size),
        "crop_box": _rounded(crop.box, 3),
        "crop_source": crop.source,
        "input_size": int(crop.image.shape[0]),
        "K": _rounded(crop.K),
        "K_image": _rounded(crop.K_image),
        "focal_source": (
            "given"
            if info.get("focal_given")
            else f"{DEFAULT_FOV_DEGREES:g} degree field of view across the longer side"
        ),
        "weak_camera": _rounded(prediction.weak_camera),
        "translation": _rounded(prediction.translation),
        "joint_names": list(COCO17_NAMES),
        "joints_3d": _rounded(joints),
        "joints_2d": _rounded(project(joints, crop.K), 3) if drawable else None,
        "joints_2d_image": _rounded(project(joints, crop.K_image), 3) if drawable else None,
        "frame": "camera (OpenCV: x right, y down, z forward), metres; pixels with centres at integers",
        "checkpoint": info.get("checkpoint"),
        "step": info.get("step"),
        "timings_ms": {k: round(float(v), 2) for k, v in info.get("timings_ms", {}).items()},
        "fit": None if prediction.fit is None else {"mask": crop.mask_source, **prediction.fit.to_dict()},
    }


def json_text(record: dict[str, Any]) -> str:
    """``record`` as indented JSON with every innermost list of numbers on one line."""
    text = json.dumps(record, indent=1)
    return re.sub(r"\[\s*([^\[\]{}\"]*?)\s*\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


def write_outputs(
    folder: Path, path: Path, crop: PersonCrop, prediction: Prediction, renderer: Renderer, info: dict[str, Any]
) -> None:
    """Write ``body.obj``, ``clothed.obj``, ``scene.glb``, ``overlay.png`` and ``prediction.json``
    for the image at ``path`` into ``folder`` (created if needed).

    ``info`` holds ``checkpoint``, ``step``, ``focal_given`` and ``timings_ms`` (to which the
    export time is added).

    Raises:
        ValueError: a prediction with NaN or infinite values (nothing is written).
    """
    arrays = (prediction.body_vertices, prediction.cloth_vertices, prediction.joints, prediction.translation)
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError(
            "the prediction holds NaN or infinite values: the checkpoint is probably corrupt or its training "
            "diverged; check it with jobs/evaluate.py, or use an earlier checkpoint"
        )
    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    write_obj(folder / "body.obj", prediction.body_vertices, prediction.body_faces)
    write_obj(folder / "clothed.obj", prediction.cloth_vertices, prediction.cloth_faces)
    (folder / "scene.glb").write_bytes(scene_glb(prediction))
    overlay = overlay_picture(renderer, crop, prediction)
    if not cv2.imwrite(str(folder / "overlay.png"), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR), PNG_SETTINGS):
        raise OSError(f"could not write {folder / 'overlay.png'}")
    timings = {**info.get("timings_ms", {}), "export": 1000.0 * (time.perf_counter() - start)}
    record = prediction_record(path, crop, prediction, {**info, "timings_ms": timings})
    (folder / "prediction.json").write_text(json_text(record))
