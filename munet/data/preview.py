"""Contact sheet of a shard folder: ``python -m munet.data preview DIR --out grid.png``.

One row per sample: the image, the mask, the normal map, and an overlay of the clothed mesh's
wireframe and the 2D joints with their skeleton, both projected with the stored camera (so any
misalignment between image, camera and geometry is visible at a glance).
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import cv2
import numpy as np

from munet.body.joints import COCO17_SKELETON
from munet.data.schema import SampleRecord, decode_record, encode_normal_map
from munet.data.shards import ShardStore
from munet.geometry import project

_WIRE_FACES = 3000
"""About this many mesh triangles are drawn in the overlay (all of them would fill the image)."""
_WIRE_COLOUR = (0, 255, 255)
_BONE_COLOUR = (255, 64, 64)
_JOINT_COLOUR = (255, 255, 0)


def draw_overlay(record: SampleRecord) -> np.ndarray:
    """The sample's image (S, S, 3) uint8 with the projected clothed-mesh wireframe and the skeleton
    of its real 2D joints (what the sample has of them)."""
    image = record.image.copy()
    if record.cloth is not None:
        pixels = project(record.cloth.vertices, record.camera.K, record.camera.orthographic)
        faces = record.cloth.faces[:: max(1, len(record.cloth.faces) // _WIRE_FACES)]
        triangles = np.round(pixels[faces] * 16).astype(np.int32)
        wire = image.copy()
        cv2.polylines(wire, list(triangles), True, _WIRE_COLOUR, 1, cv2.LINE_AA, shift=4)
        image = cv2.addWeighted(image, 0.5, wire, 0.5, 0.0)
    body = record.body
    if body.joints_2d is None:
        return image
    joints = np.round(body.joints_2d * 16).astype(np.int32)
    real = np.ones(len(joints), bool) if body.joints_2d_valid is None else body.joints_2d_valid > 0.5
    for a, b in COCO17_SKELETON:
        if real[a] and real[b]:
            cv2.line(image, tuple(joints[a]), tuple(joints[b]), _BONE_COLOUR, 2, cv2.LINE_AA, shift=4)
    for joint in joints[real]:
        cv2.circle(image, tuple(joint), 3 * 16, _JOINT_COLOUR, -1, cv2.LINE_AA, shift=4)
    return image


def preview_row(record: SampleRecord) -> np.ndarray:
    """Image | mask | normals | overlay, side by side, with the key written on the image (black
    panels for what the sample lacks)."""
    blank = np.zeros_like(record.image)
    mask = blank if record.mask is None else np.repeat(record.mask[..., None].astype(np.uint8) * 255, 3, axis=2)
    normal = encode_normal_map(record.normal, record.mask) if record.normal is not None else blank
    image = record.image.copy()
    cv2.putText(image, record.key, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([image, mask, normal, draw_overlay(record)], axis=1)


def make_contact_sheet(location: str, out: str | Path, num_samples: int = 6) -> Path:
    """Write a PNG contact sheet of the first ``num_samples`` samples of a shard folder."""
    store = ShardStore(location)

    def raw_samples():
        for shard in store.read_manifest().shards:
            yield from store.iter_shard(shard)

    rows = [preview_row(decode_record(raw)) for raw in islice(raw_samples(), num_samples)]
    if not rows:
        raise ValueError(f"{location} holds no samples")
    size = max(row.shape[0] for row in rows)
    rows = [cv2.resize(row, (row.shape[1] * size // row.shape[0], size)) for row in rows]
    sheet = np.concatenate(rows, axis=0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {out}")
    return out
