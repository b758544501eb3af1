"""The on-disk sample schema: one WebDataset sample = one view of one person.

A sample's key is ``{source}/{subject}/{view}`` (no dots: WebDataset readers split a member name at
the first dot of its base name). Its members, named ``{key}.{member}``:

=============== ============================================================================
``image.jpg``   RGB crop around the person, ``S × S`` (``image.png`` is accepted too).
``mask.png``    8-bit grey silhouette, 255 on the person, 0 elsewhere.
``normal.png``  optional: camera-frame unit normals as RGB ``(n + 1) / 2 · 255``; 0 off the mask.
``body.npz``    ``backend`` (str), ``pose`` (P,), ``shape`` (B,), ``vertices`` (V, 3),
                ``joints`` (17, 3) COCO-17 in the camera frame (metres), ``joints_2d`` (17, 2) px.
``cloth.npz``   the clothed surface in the camera frame: ``vertices`` (Vc, 3), ``faces`` (Fc, 3)
                int32 (outward), ``face_labels`` (Fc,) uint8, and ``points`` / ``normals``
                (N, 3): N points sampled uniformly on the surface with outward unit normals.
``camera.json`` ``K``, ``R``, ``t`` (world → camera), ``image_size`` (see :class:`Camera`).
``meta.json``   ``schema_version``, ``source``, ``garments`` (list of str), free extra fields
                (the synthetic generator adds ``subject``, ``view``, ``seed``, ``pose_family``
                and ``face_label_names``, the name of each ``face_labels`` value).
=============== ============================================================================

Camera-frame geometry is the body model's world-frame output moved by the extrinsics:
``vertices = body(pose, shape).vertices @ R.T + t`` (for the synthetic data, whose bodies have no
translation of their own).

Member names end in extensions that Ray's ``read_webdataset`` and ``webdataset`` know (``jpg``,
``png``, ``json``) or leave as bytes (``npz``); arrays are stored with ``numpy.savez`` and read
back with ``allow_pickle=False``, so no member ever needs unpickling. Ray names a column after the
member suffix (``image.jpg``, ``body.npz`` …).

:func:`encode_sample` turns a :class:`SampleRecord` into member bytes; :func:`decode_record` reads
them back losslessly (up to JPEG compression), from raw bytes or from values that Ray's default
decoder has already decoded (images as arrays, JSON as dicts).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from munet.data.camera import Camera

SCHEMA_VERSION = 1
"""Version of the sample schema; bump it on any incompatible change to the members."""

IMAGE_MEMBERS = ("image.jpg", "image.png")
MASK_MEMBER = "mask.png"
NORMAL_MEMBER = "normal.png"
BODY_MEMBER = "body.npz"
CLOTH_MEMBER = "cloth.npz"
CAMERA_MEMBER = "camera.json"
META_MEMBER = "meta.json"

_BODY_ARRAYS = ("pose", "shape", "vertices", "joints", "joints_2d")
_CLOTH_ARRAYS = ("vertices", "faces", "face_labels", "points", "normals")


class BadSampleError(ValueError):
    """Stored data that will fail the same way on every read: a sample that breaks the schema, or
    a shard whose bytes are corrupt (:class:`~munet.data.shards.CorruptShardError`).

    Retrying (e.g. restarting a training worker group) cannot help: fix or regenerate the data,
    or set ``data.on_bad_sample: skip``. Use :func:`is_bad_data` to find one behind the wrappers
    that Ray puts around errors raised in its tasks.
    """


class SchemaError(BadSampleError):
    """A sample that does not follow the schema (the message names the shard and key)."""


def is_bad_data(error: BaseException) -> bool:
    """Whether ``error`` is, wraps, or was caused by a :class:`BadSampleError`.

    Follows ``__cause__``/``__context__``, the ``cause`` of Ray's task errors and the members of
    exception groups. Ray Data re-raises a task's error on the driver as a wrapper whose chain no
    longer holds the original exception; its text (the remote traceback) still names the class,
    so the text of each error is searched for the name of a :class:`BadSampleError` class too.
    This lets a trainer tell a bad sample, which will fail again, from a transient failure.
    """
    import munet.data.shards  # noqa: F401 (defines CorruptShardError, a BadSampleError)

    names = re.compile(r"\b(" + "|".join(sorted(_class_names(BadSampleError))) + r")\b")
    seen: set[int] = set()
    pending: list[Any] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BadSampleError):
            return True
        try:
            text = f"{current}\n{getattr(current, 'traceback_str', '')}"
        except Exception:  # noqa: BLE001 (a wrapper whose __str__ fails)
            text = ""
        if names.search(text):
            return True
        pending += [current.__cause__, current.__context__, getattr(current, "cause", None)]
        pending += list(getattr(current, "exceptions", None) or ())
    return False


def _class_names(cls: type) -> set[str]:
    """Names of ``cls`` and of every subclass defined so far."""
    return {cls.__name__}.union(*(_class_names(sub) for sub in cls.__subclasses__()))


@dataclass
class BodyRecord:
    """The body of one sample, camera frame.

    Attributes:
        backend: body-model name (``anny``, ``smplx``).
        pose: (P,) pose parameters of that backend.
        shape: (B,) shape parameters.
        vertices: (V, 3) metres.
        joints: (17, 3) COCO-17 joints, metres.
        joints_2d: (17, 2) the joints projected with ``K``, pixels.
    """

    backend: str
    pose: np.ndarray
    shape: np.ndarray
    vertices: np.ndarray
    joints: np.ndarray
    joints_2d: np.ndarray


@dataclass
class ClothRecord:
    """The clothed surface of one sample, camera frame.

    Attributes:
        vertices: (Vc, 3) metres.
        faces: (Fc, 3) int32, outward winding.
        face_labels: (Fc,) uint8 part/garment label per face.
        points: (N, 3) points sampled uniformly on the surface, metres.
        normals: (N, 3) outward unit normals at ``points``.
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_labels: np.ndarray
    points: np.ndarray
    normals: np.ndarray


@dataclass
class SampleRecord:
    """Everything stored for one sample (see the module docstring for the members).

    Attributes:
        key: ``{source}/{subject}/{view}`` (see :func:`make_key`).
        image: (S, S, 3) uint8 RGB.
        mask: (S, S) bool.
        camera: the camera; ``camera.image_size == S``.
        body: the body in the camera frame.
        cloth: the clothed surface in the camera frame.
        garments: garment types worn.
        normal: (S, S, 3) float32 camera-frame unit normals (0 off the mask), or ``None``.
        extra_meta: further JSON-serialisable fields for ``meta.json``.
    """

    key: str
    image: np.ndarray
    mask: np.ndarray
    camera: Camera
    body: BodyRecord
    cloth: ClothRecord
    garments: list[str]
    normal: np.ndarray | None = None
    extra_meta: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """The data source, the first part of the key."""
        return split_key(self.key)[0]


def make_key(source: str, subject: str | int, view: str | int) -> str:
    """The sample key ``{source}/{subject}/{view}``.

    Raises:
        ValueError: a part is empty or contains ``/``, ``.`` or whitespace.
    """
    parts = [str(source), str(subject), str(view)]
    for part in parts:
        if not part or any(c in part for c in "/.") or any(c.isspace() for c in part):
            raise ValueError(
                f"key part {part!r} must be non-empty without '/', '.' or whitespace "
                "(WebDataset splits member names at the first dot)"
            )
    return "/".join(parts)


def split_key(key: str) -> tuple[str, str, str]:
    """``(source, subject, view)`` of a key made by :func:`make_key`."""
    parts = key.split("/")
    if len(parts) != 3:
        raise ValueError(f"sample key {key!r} is not of the form source/subject/view")
    return parts[0], parts[1], parts[2]


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _png_bytes(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError(f"PNG encoding failed for an image of shape {image.shape}")
    return data.tobytes()


def encode_normal_map(normal: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Unit normals (S, S, 3) → uint8 RGB ``(n + 1) / 2 · 255``, 0 off the mask."""
    encoded = np.clip((normal + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    return np.where(mask[..., None], encoded, 0).astype(np.uint8)


def decode_normal_map(encoded: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_normal_map`: (S, S, 3) float32 unit normals, 0 off the mask."""
    normal = encoded.astype(np.float32) / 127.5 - 1.0
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-6)
    return np.where(mask[..., None], normal, 0.0).astype(np.float32)


def encode_sample(record: SampleRecord, image_format: str = "jpg", jpeg_quality: int = 92) -> dict[str, bytes]:
    """The members of one sample: ``{member name: bytes}`` (names without the key).

    Args:
        record: the sample.
        image_format: ``jpg`` (small) or ``png`` (lossless).
        jpeg_quality: JPEG quality, 1–100.
    """
    size = record.camera.image_size
    if record.image.shape != (size, size, 3) or record.image.dtype != np.uint8:
        raise ValueError(
            f"{record.key}: image must be uint8 ({size}, {size}, 3) to match camera.image_size, "
            f"got {record.image.dtype} {record.image.shape}"
        )
    if record.mask.shape != (size, size):
        raise ValueError(f"{record.key}: mask must be ({size}, {size}), got {record.mask.shape}")
    bgr = cv2.cvtColor(record.image, cv2.COLOR_RGB2BGR)
    if image_format == "jpg":
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if not ok:
            raise ValueError(f"{record.key}: JPEG encoding failed")
        image_bytes = data.tobytes()
    elif image_format == "png":
        image_bytes = _png_bytes(bgr)
    else:
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    body, cloth = record.body, record.cloth
    meta = {
        **record.extra_meta,
        "schema_version": SCHEMA_VERSION,
        "source": record.source,
        "garments": list(record.garments),
    }
    members = {
        f"image.{image_format}": image_bytes,
        MASK_MEMBER: _png_bytes(record.mask.astype(np.uint8) * 255),
        BODY_MEMBER: _npz_bytes(
            {
                "backend": np.array(body.backend),
                **{name: np.asarray(getattr(body, name), np.float32) for name in _BODY_ARRAYS},
            }
        ),
        CLOTH_MEMBER: _npz_bytes(
            {
                "vertices": np.asarray(cloth.vertices, np.float32),
                "faces": np.asarray(cloth.faces, np.int32),
                "face_labels": np.asarray(cloth.face_labels, np.uint8),
                "points": np.asarray(cloth.points, np.float32),
                "normals": np.asarray(cloth.normals, np.float32),
            }
        ),
        CAMERA_MEMBER: json.dumps(record.camera.to_dict()).encode(),
        META_MEMBER: json.dumps(meta, sort_keys=True).encode(),
    }
    if record.normal is not None:
        normal_rgb = encode_normal_map(record.normal, record.mask)
        members[NORMAL_MEMBER] = _png_bytes(cv2.cvtColor(normal_rgb, cv2.COLOR_RGB2BGR))
    return members


def sample_name(raw: dict[str, Any]) -> str:
    """``sample KEY in shard URL`` for error messages about a raw sample."""
    return f"sample {raw.get('__key__', '?')!r} in shard {raw.get('__url__', '?')}"


def _is_missing(value: Any) -> bool:
    """Absent member: Ray's reader fills members a sample lacks with None or NaN."""
    return value is None or (isinstance(value, float) and value != value)


def _member(raw: dict[str, Any], name: str) -> Any:
    value = raw.get(name)
    if _is_missing(value):
        present = sorted(k for k, v in raw.items() if not k.startswith("__") and not _is_missing(v))
        raise SchemaError(f"{sample_name(raw)}: missing member {name!r} (present: {present})")
    return value


def _image(raw: dict[str, Any], name: str, flags: int) -> np.ndarray:
    """A decoded image member (RGB or grey); accepts bytes or an already decoded array."""
    value = _member(raw, name)
    if isinstance(value, np.ndarray):
        return value
    try:
        image = cv2.imdecode(np.frombuffer(value, np.uint8), flags)
    except (cv2.error, TypeError, ValueError):
        image = None
    if image is None:
        raise SchemaError(f"{sample_name(raw)}: member {name!r} is not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image


def _json(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = _member(raw, name)
    if not isinstance(value, dict):
        try:
            value = json.loads(value)
        except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
            raise SchemaError(f"{sample_name(raw)}: member {name!r} is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise SchemaError(f"{sample_name(raw)}: member {name!r} is not a JSON object")
    return value


def _npz(raw: dict[str, Any], name: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays of an npz member, read without unpickling; every float array must be finite."""
    value = _member(raw, name)
    try:
        with np.load(io.BytesIO(value), allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("not an npz archive")
            arrays = {key: archive[key] for key in archive.files}
    # Damaged bytes reach numpy's and zipfile's parsers, which raise many types (a corrupt header
    # may even ask for an absurd allocation): any failure is this member's fault.
    except Exception as exc:  # noqa: BLE001 (MemoryError included)
        raise SchemaError(f"{sample_name(raw)}: member {name!r} is not a readable npz ({exc!r})") from exc
    missing = [key for key in names if key not in arrays]
    if missing:
        raise SchemaError(f"{sample_name(raw)}: {name} lacks arrays {missing}")
    for key, array in arrays.items():
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            bad = int(array.size - np.isfinite(array).sum())
            raise SchemaError(
                f"{sample_name(raw)}: {name} array {key!r} holds {bad} non-finite value(s) (NaN or "
                "inf); regenerate the shard or drop the sample (data.on_bad_sample: skip)"
            )
    return arrays


def read_meta(raw: dict[str, Any]) -> dict[str, Any]:
    """The sample's ``meta.json``, after checking its schema version.

    Raises:
        SchemaError: missing member or a schema version other than :data:`SCHEMA_VERSION`.
    """
    meta = _json(raw, META_MEMBER)
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise SchemaError(
            f"{sample_name(raw)} has schema version {version!r}; this code reads version "
            f"{SCHEMA_VERSION}. Regenerate the shards (jobs/make_shards.py) or use the munet "
            "version that wrote them."
        )
    return meta


def read_image(raw: dict[str, Any]) -> np.ndarray:
    """The sample's RGB image (S, S, 3) uint8, from ``image.jpg`` or ``image.png``."""
    name = next((n for n in IMAGE_MEMBERS if not _is_missing(raw.get(n))), IMAGE_MEMBERS[0])
    image = _image(raw, name, cv2.IMREAD_COLOR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise SchemaError(f"{sample_name(raw)}: image must be RGB, got shape {image.shape}")
    return image


def read_mask(raw: dict[str, Any]) -> np.ndarray:
    """The sample's silhouette (S, S) bool."""
    mask = _image(raw, MASK_MEMBER, cv2.IMREAD_GRAYSCALE)
    return (mask[..., 0] if mask.ndim == 3 else mask) > 127


def read_body(raw: dict[str, Any]) -> BodyRecord:
    """The sample's body (float32 arrays, camera frame)."""
    arrays = _npz(raw, BODY_MEMBER, ("backend", *_BODY_ARRAYS))
    return BodyRecord(
        backend=str(arrays["backend"]),
        **{name: arrays[name].astype(np.float32) for name in _BODY_ARRAYS},
    )


def read_cloth(raw: dict[str, Any]) -> ClothRecord:
    """The sample's clothed surface (camera frame)."""
    arrays = _npz(raw, CLOTH_MEMBER, _CLOTH_ARRAYS)
    return ClothRecord(
        vertices=arrays["vertices"].astype(np.float32),
        faces=arrays["faces"].astype(np.int32),
        face_labels=arrays["face_labels"].astype(np.uint8),
        points=arrays["points"].astype(np.float32),
        normals=arrays["normals"].astype(np.float32),
    )


def read_camera(raw: dict[str, Any]) -> Camera:
    """The sample's camera."""
    values = _json(raw, CAMERA_MEMBER)
    try:
        camera = Camera.from_dict(values)
    except (ValueError, TypeError, OverflowError) as exc:
        raise SchemaError(f"{sample_name(raw)}: bad camera.json ({exc})") from exc
    if not all(np.isfinite(array).all() for array in (camera.K, camera.R, camera.t)):
        raise SchemaError(f"{sample_name(raw)}: camera.json holds non-finite values (NaN or inf)")
    return camera


def decode_record(raw: dict[str, Any]) -> SampleRecord:
    """Read every member of a raw sample back into a :class:`SampleRecord`.

    Args:
        raw: ``{"__key__": key, "__url__": shard (optional), member name: bytes or decoded}``,
            as yielded by ``webdataset``, Ray's ``read_webdataset`` or
            :func:`munet.data.shards.iter_tar_samples`.

    Raises:
        SchemaError: a missing or unreadable member, or a wrong schema version; the message
            names the shard and the key.
    """
    meta = read_meta(raw)
    mask = read_mask(raw)
    normal = None
    if not _is_missing(raw.get(NORMAL_MEMBER)):
        normal = decode_normal_map(_image(raw, NORMAL_MEMBER, cv2.IMREAD_COLOR), mask)
    extra = {k: v for k, v in meta.items() if k not in ("schema_version", "source", "garments")}
    record = SampleRecord(
        key=str(raw.get("__key__", "")),
        image=read_image(raw),
        mask=mask,
        camera=read_camera(raw),
        body=read_body(raw),
        cloth=read_cloth(raw),
        garments=list(meta.get("garments", [])),
        normal=normal,
        extra_meta=extra,
    )
    check_record(record, raw)
    return record


def check_record(record: SampleRecord, raw: dict[str, Any]) -> None:
    """Check that the arrays of a record read from ``raw`` fit together (shapes, face indices).

    Raises:
        SchemaError: the first mismatch, naming the sample (shard and key) and the array.
    """
    size = record.camera.image_size
    body, cloth = record.body, record.cloth
    expected = {
        "image": (record.image.shape, (size, size, 3)),
        "mask": (record.mask.shape, (size, size)),
        "body.joints": (body.joints.shape, (17, 3)),
        "body.joints_2d": (body.joints_2d.shape, (17, 2)),
        "body.vertices": (body.vertices.shape[1:], (3,)),
        "cloth.vertices": (cloth.vertices.shape[1:], (3,)),
        "cloth.faces": (cloth.faces.shape[1:], (3,)),
        "cloth.face_labels": (cloth.face_labels.shape, cloth.faces.shape[:1]),
        "cloth.points": (cloth.points.shape[1:], (3,)),
        "cloth.normals": (cloth.normals.shape, cloth.points.shape),
    }
    if record.normal is not None:
        expected["normal"] = (record.normal.shape, (size, size, 3))
    for name, (shape, want) in expected.items():
        if tuple(shape) != tuple(want):
            raise SchemaError(f"{sample_name(raw)}: {name} has shape {tuple(shape)}, expected {want}")
    if cloth.faces.size and (cloth.faces.min() < 0 or cloth.faces.max() >= len(cloth.vertices)):
        raise SchemaError(f"{sample_name(raw)}: cloth.faces index outside the vertex array")
