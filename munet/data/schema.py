"""The on-disk sample schema: one WebDataset sample = one view of one person.

A sample's key is ``{source}/{subject}/{view}`` (no dots: WebDataset readers split a member name at
the first dot of its base name). Its members, named ``{key}.{member}``:

=============== ============================================================================
``image.jpg``   RGB crop around the person, ``S × S`` (``image.png`` is accepted too).
``mask.png``    8-bit grey silhouette, 255 on the person, 0 elsewhere (target ``mask``).
``normal.png``  optional: camera-frame unit normals as RGB ``(n + 1) / 2 · 255``; 0 off the mask.
``body.npz``    ``backend`` (str: the body model or mesh topology, ``anny``, ``smpl``, ``smplx``
                …; ``none`` for joints-only data), and the arrays of the targets it holds:
                ``body_mesh``: ``pose`` (P,), ``shape`` (B,), ``vertices`` (V, 3), camera
                frame, metres; ``joints_3d``: ``joints`` (17, 3) COCO-17, camera frame, metres,
                optionally ``joints_valid`` (17,) in {0, 1}; ``joints_2d``: ``joints_2d``
                (17, 2) pixels, optionally ``joints_2d_valid`` (17,). Evaluation-only, for
                benchmark protocols scored on a data set's own joints: ``eval_joints`` (J, 3)
                metres, camera frame, with ``eval_joint_set`` (str, e.g. ``lsp14``).
``cloth.npz``   the clothed surface in the camera frame (target ``cloth``): ``vertices``
                (Vc, 3), ``faces`` (Fc, 3) int32 (outward), ``face_labels`` (Fc,) uint8, and
                ``points`` / ``normals`` (N, 3): N points sampled uniformly on the surface with
                outward unit normals.
``camera.json`` ``K``, ``R``, ``t`` (world → camera), ``image_size`` and ``projection``
                (``perspective`` or ``orthographic``; absent: perspective), see :class:`Camera`.
``meta.json``   ``schema_version``, ``source``, ``garments`` (list of str), ``targets`` (the
                sorted :data:`TARGETS` the sample holds), free extra fields (the synthetic
                generator adds ``subject``, ``view``, ``seed``, ``pose_family`` and
                ``face_label_names``, the name of each ``face_labels`` value).
=============== ============================================================================

Partial supervision: real data sets hold some targets only (3DPW: body mesh and 2D joints, no
mask or clothed surface; Human3.6M: 3D and 2D joints only). A sample's targets are what its members
hold (:attr:`SampleRecord.targets`); ``meta.json`` lists them too, and a reader checks that the two
agree. Synthetic samples hold all five. Schema version 1 shards (every target, no ``targets``
list) are still read.

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

SCHEMA_VERSION = 2
"""Version of the sample schema written; bump it on any incompatible change to the members."""

READABLE_VERSIONS = (1, 2)
"""Schema versions this code reads (version 1: every target present, no ``targets`` list)."""

TARGETS = ("body_mesh", "cloth", "joints_2d", "joints_3d", "mask")
"""What a sample can supervise: the body mesh (with its model parameters), the clothed surface,
the 2D joints, the 3D joints and the person mask (sorted, the order of ``meta.json``)."""

IMAGE_MEMBERS = ("image.jpg", "image.png")
MASK_MEMBER = "mask.png"
NORMAL_MEMBER = "normal.png"
BODY_MEMBER = "body.npz"
CLOTH_MEMBER = "cloth.npz"
CAMERA_MEMBER = "camera.json"
META_MEMBER = "meta.json"

_BODY_MESH_ARRAYS = ("pose", "shape", "vertices")
_BODY_OPTIONAL_ARRAYS = ("joints", "joints_valid", "joints_2d", "joints_2d_valid", "eval_joints")
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
    """The body of one sample, camera frame; ``None`` marks a target the sample lacks.

    Attributes:
        backend: the body model or mesh topology of ``vertices``/``pose``/``shape`` (``anny``,
            ``smpl``, ``smplx`` …); ``none`` when the sample has no body mesh.
        pose: (P,) pose parameters of that model (with ``shape`` and ``vertices``: target
            ``body_mesh``).
        shape: (B,) shape parameters.
        vertices: (V, 3) metres.
        joints: (17, 3) COCO-17 joints, metres (target ``joints_3d``).
        joints_2d: (17, 2) the joints in the image, pixels (target ``joints_2d``).
        joints_valid: (17,) 1 where ``joints`` holds a real joint, 0 where the data set has none
            (``None``: all 17 are real).
        joints_2d_valid: (17,) the same for ``joints_2d``.
        eval_joints: (J, 3) metres, the data set's own joints for a benchmark protocol
            (evaluation only), or ``None``.
        eval_joint_set: the name of ``eval_joints``' joint set (e.g. ``lsp14``, ``mpi3dhp17``).
    """

    backend: str
    pose: np.ndarray | None = None
    shape: np.ndarray | None = None
    vertices: np.ndarray | None = None
    joints: np.ndarray | None = None
    joints_2d: np.ndarray | None = None
    joints_valid: np.ndarray | None = None
    joints_2d_valid: np.ndarray | None = None
    eval_joints: np.ndarray | None = None
    eval_joint_set: str | None = None

    @property
    def has_mesh(self) -> bool:
        """Whether the body mesh (vertices, pose and shape) is present."""
        return self.vertices is not None


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
        mask: (S, S) bool, or ``None`` when the data set has no person mask.
        camera: the camera; ``camera.image_size == S``.
        body: the body in the camera frame (its targets may be partial).
        cloth: the clothed surface in the camera frame, or ``None``.
        garments: garment types worn.
        normal: (S, S, 3) float32 camera-frame unit normals (0 off the mask), or ``None``.
        extra_meta: further JSON-serialisable fields for ``meta.json``.
    """

    key: str
    image: np.ndarray
    mask: np.ndarray | None
    camera: Camera
    body: BodyRecord
    cloth: ClothRecord | None
    garments: list[str]
    normal: np.ndarray | None = None
    extra_meta: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """The data source, the first part of the key."""
        return split_key(self.key)[0]

    @property
    def targets(self) -> list[str]:
        """The :data:`TARGETS` this sample holds, sorted."""
        present = {
            "body_mesh": self.body.has_mesh,
            "cloth": self.cloth is not None,
            "joints_2d": self.body.joints_2d is not None,
            "joints_3d": self.body.joints is not None,
            "mask": self.mask is not None,
        }
        return [name for name in TARGETS if present[name]]


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


def _body_arrays(body: BodyRecord, key: str) -> dict[str, np.ndarray]:
    """The arrays of ``body.npz``: the backend and the present targets, float32."""
    mesh = [getattr(body, name) is not None for name in _BODY_MESH_ARRAYS]
    if any(mesh) and not all(mesh):
        raise ValueError(f"{key}: a body mesh needs pose, shape and vertices together")
    if body.has_mesh and body.joints is None:
        raise ValueError(f"{key}: a body mesh needs its COCO-17 joints (the pelvis it is aligned on)")
    if (body.eval_joints is None) != (body.eval_joint_set is None):
        raise ValueError(f"{key}: eval_joints and eval_joint_set go together")
    arrays = {"backend": np.array(body.backend)}
    for name in (*_BODY_MESH_ARRAYS, *_BODY_OPTIONAL_ARRAYS):
        value = getattr(body, name)
        if value is not None:
            arrays[name] = np.asarray(value, np.float32)
    if body.eval_joint_set is not None:
        arrays["eval_joint_set"] = np.array(body.eval_joint_set)
    return arrays


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
    if record.mask is not None and record.mask.shape != (size, size):
        raise ValueError(f"{record.key}: mask must be ({size}, {size}), got {record.mask.shape}")
    if record.normal is not None and record.mask is None:
        raise ValueError(f"{record.key}: a normal map needs the mask it is defined on")
    if not record.targets:
        raise ValueError(f"{record.key}: the sample holds no target (none of {list(TARGETS)})")
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
    meta = {
        **record.extra_meta,
        "schema_version": SCHEMA_VERSION,
        "source": record.source,
        "garments": list(record.garments),
        "targets": record.targets,
    }
    members = {
        f"image.{image_format}": image_bytes,
        BODY_MEMBER: _npz_bytes(_body_arrays(record.body, record.key)),
        CAMERA_MEMBER: json.dumps(record.camera.to_dict()).encode(),
        META_MEMBER: json.dumps(meta, sort_keys=True).encode(),
    }
    if record.mask is not None:
        members[MASK_MEMBER] = _png_bytes(record.mask.astype(np.uint8) * 255)
    cloth = record.cloth
    if cloth is not None:
        members[CLOTH_MEMBER] = _npz_bytes(
            {
                "vertices": np.asarray(cloth.vertices, np.float32),
                "faces": np.asarray(cloth.faces, np.int32),
                "face_labels": np.asarray(cloth.face_labels, np.uint8),
                "points": np.asarray(cloth.points, np.float32),
                "normals": np.asarray(cloth.normals, np.float32),
            }
        )
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


def has_member(raw: dict[str, Any], name: str) -> bool:
    """Whether the raw sample holds member ``name`` (Ray's reader fills absent ones with None/NaN)."""
    return not _is_missing(raw.get(name))


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
    if version not in READABLE_VERSIONS:
        raise SchemaError(
            f"{sample_name(raw)} has schema version {version!r}; this code reads versions "
            f"{list(READABLE_VERSIONS)}. Regenerate the shards (jobs/make_shards.py, munet convert) "
            "or use the munet version that wrote them."
        )
    return meta


def check_targets(record: SampleRecord, meta: dict[str, Any], raw: dict[str, Any]) -> None:
    """Check that the targets a sample's members hold are those its ``meta.json`` lists (all of
    :data:`TARGETS` for schema version 1).

    Raises:
        SchemaError: a listed target whose member or arrays are missing, or the reverse.
    """
    listed = meta.get("targets", list(TARGETS) if meta.get("schema_version") == 1 else None)
    if not isinstance(listed, list) or not set(listed) <= set(TARGETS):
        raise SchemaError(f"{sample_name(raw)}: meta.json 'targets' must list some of {list(TARGETS)}, got {listed!r}")
    held = record.targets
    missing = sorted(set(listed) - set(held))
    if missing:
        where = ", ".join(f"{_TARGET_HOME[name]} (target {name!r})" for name in missing)
        raise SchemaError(f"{sample_name(raw)}: missing {where}, which meta.json lists")
    unlisted = sorted(set(held) - set(listed))
    if unlisted:
        raise SchemaError(
            f"{sample_name(raw)}: holds targets {unlisted} that meta.json does not list ({sorted(listed)})"
        )


_TARGET_HOME = {
    "body_mesh": "body.npz arrays pose, shape and vertices",
    "cloth": f"member {CLOTH_MEMBER!r}",
    "joints_2d": "body.npz array joints_2d",
    "joints_3d": "body.npz array joints",
    "mask": f"member {MASK_MEMBER!r}",
}
"""Where each target lives, for messages."""


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
    """The sample's body (float32 arrays, camera frame; absent targets are ``None``)."""
    arrays = _npz(raw, BODY_MEMBER, ("backend",))
    mesh = [name in arrays for name in _BODY_MESH_ARRAYS]
    if any(mesh) and not all(mesh):
        missing = [name for name in _BODY_MESH_ARRAYS if name not in arrays]
        raise SchemaError(f"{sample_name(raw)}: {BODY_MEMBER} holds part of a body mesh, lacking {missing}")
    if ("eval_joints" in arrays) != ("eval_joint_set" in arrays):
        raise SchemaError(f"{sample_name(raw)}: {BODY_MEMBER} needs eval_joints and eval_joint_set together")
    found = {
        name: arrays[name].astype(np.float32) for name in (*_BODY_MESH_ARRAYS, *_BODY_OPTIONAL_ARRAYS) if name in arrays
    }
    joint_set = str(arrays["eval_joint_set"]) if "eval_joint_set" in arrays else None
    return BodyRecord(backend=str(arrays["backend"]), eval_joint_set=joint_set, **found)


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
    """The sample's camera (perspective when ``camera.json`` has no ``projection``, as shards
    written before the field existed)."""
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
    mask = read_mask(raw) if has_member(raw, MASK_MEMBER) else None
    normal = None
    if mask is not None and has_member(raw, NORMAL_MEMBER):
        normal = decode_normal_map(_image(raw, NORMAL_MEMBER, cv2.IMREAD_COLOR), mask)
    extra = {k: v for k, v in meta.items() if k not in ("schema_version", "source", "garments", "targets")}
    record = SampleRecord(
        key=str(raw.get("__key__", "")),
        image=read_image(raw),
        mask=mask,
        camera=read_camera(raw),
        body=read_body(raw),
        cloth=read_cloth(raw) if has_member(raw, CLOTH_MEMBER) else None,
        garments=list(meta.get("garments", [])),
        normal=normal,
        extra_meta=extra,
    )
    check_targets(record, meta, raw)
    check_record(record, raw)
    return record


def check_record(record: SampleRecord, raw: dict[str, Any]) -> None:
    """Check that the arrays of a record read from ``raw`` fit together (shapes, face indices).

    Raises:
        SchemaError: the first mismatch, naming the sample (shard and key) and the array.
    """
    size = record.camera.image_size
    body, cloth = record.body, record.cloth
    expected: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {"image": (record.image.shape, (size, size, 3))}
    if record.mask is not None:
        expected["mask"] = (record.mask.shape, (size, size))
    if body.vertices is not None:
        expected["body.vertices"] = (body.vertices.shape[1:], (3,))
    for name, want in (
        ("joints", (17, 3)),
        ("joints_2d", (17, 2)),
        ("joints_valid", (17,)),
        ("joints_2d_valid", (17,)),
    ):
        if getattr(body, name) is not None:
            expected[f"body.{name}"] = (getattr(body, name).shape, want)
    if body.eval_joints is not None:
        expected["body.eval_joints"] = (body.eval_joints.shape[1:], (3,))
    if cloth is not None:
        expected.update(
            {
                "cloth.vertices": (cloth.vertices.shape[1:], (3,)),
                "cloth.faces": (cloth.faces.shape[1:], (3,)),
                "cloth.face_labels": (cloth.face_labels.shape, cloth.faces.shape[:1]),
                "cloth.points": (cloth.points.shape[1:], (3,)),
                "cloth.normals": (cloth.normals.shape, cloth.points.shape),
            }
        )
    if record.normal is not None:
        expected["normal"] = (record.normal.shape, (size, size, 3))
    for name, (shape, want) in expected.items():
        if tuple(shape) != tuple(want):
            raise SchemaError(f"{sample_name(raw)}: {name} has shape {tuple(shape)}, expected {want}")
    if body.has_mesh and body.joints is None:
        raise SchemaError(f"{sample_name(raw)}: body.npz holds a body mesh without its COCO-17 joints")
    if cloth is not None and cloth.faces.size and (cloth.faces.min() < 0 or cloth.faces.max() >= len(cloth.vertices)):
        raise SchemaError(f"{sample_name(raw)}: cloth.faces index outside the vertex array")
