"""Raw WebDataset samples → the fixed-size arrays training consumes.

Each sample becomes the decoded-sample contract of :mod:`munet.data.contract` (fixed-size
arrays: the 8-bit image and mask, the camera, the body and clothed targets).

Augmentation (``augment``) here is photometric only: brightness, contrast and saturation
(:func:`colour_jitter`, strength ``data.augmentation.colour``) and a random choice of the cloth
points. The geometric augmentation (crop zoom and shift, horizontal flip with the left/right swap)
changes ``K``, the 2D joints, the 3D targets and the body-model pose together, and needs the body
mesh's left/right vertex correspondence, which lives with the model: it runs on the batch in the
training step (:mod:`munet.train.augment`).

Every reader here checks each shard's size and SHA-256 against the manifest when it reads the
shard (:func:`munet.data.shards.verify_shard`), before decoding any of its samples, and every
float array of a sample must be finite.

Bad data (``data.on_bad_sample``, the ``on_error`` argument): ``"error"`` (default; ``"raise"`` is
the same) stops at the first bad sample or shard with a
:class:`~munet.data.schema.BadSampleError` naming the shard and the key: a
:class:`~munet.data.schema.SchemaError` for a sample, a
:class:`~munet.data.shards.CorruptShardError` for a shard that is missing, damaged (size or
checksum) or not a readable tar. Such an error repeats on every read: a trainer should stop rather
than restart workers (:func:`~munet.data.schema.is_bad_data` finds one inside Ray's wrappers).
``"skip"`` drops the bad sample (or the unreadable rest of a shard), logs a warning naming it, and
counts the samples dropped: in :attr:`Decoder.skipped` when iterating locally, and, for Ray
datasets (:mod:`munet.data.ray_dataset`), in a counter shared by the Ray job that
:func:`munet.data.ray_dataset.skipped_samples` reads (per shard folder), e.g. for a run report.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import cv2
import numpy as np

from munet.body import BodyTopology
from munet.config import AugmentConfig, DataConfig
from munet.data.camera import resize_intrinsics, resize_pixels
from munet.data.schema import (
    CLOTH_MEMBER,
    MASK_MEMBER,
    TARGETS,
    BodyRecord,
    ClothRecord,
    SampleRecord,
    SchemaError,
    check_record,
    check_targets,
    has_member,
    read_body,
    read_camera,
    read_cloth,
    read_image,
    read_mask,
    read_meta,
    sample_name,
)
from munet.data.shards import (
    CorruptShardError,
    ShardInfo,
    ShardStore,
    fix_hint,
    iter_tar_samples,
    verify_shard,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
"""What a raw sample is decoded into (:meth:`Decoder.decode_or_skip`'s ``decode``)."""

ON_ERROR = ("error", "raise", "skip")
"""Valid values of the ``on_error`` policy (``data.on_bad_sample``); ``raise`` means ``error``."""


def colour_jitter(image: np.ndarray, rng: np.random.Generator, strength: float = AugmentConfig.colour) -> np.ndarray:
    """Random brightness, contrast and saturation change of an (H, W, 3) float image in [0, 1]:
    each factor uniform in ``[1 - strength, 1 + strength]``."""
    brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, size=3)
    image = image * brightness
    image = (image - image.mean()) * contrast + image.mean()
    grey = image.mean(axis=2, keepdims=True)
    image = (image - grey) * saturation + grey
    return np.clip(image, 0.0, 1.0)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size:
        return image
    shrink = size < image.shape[0]
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def decode_sample(
    raw: dict[str, Any],
    image_size: int = DataConfig.image_size,
    cloth_points: int = DataConfig.cloth_points,
    augment: bool = False,
    rng: np.random.Generator | None = None,
    colour: float = AugmentConfig.colour,
    body: BodyTopology | None = None,
    source: int = 0,
) -> dict[str, np.ndarray]:
    """Decode one raw sample into the decoded-sample contract (:mod:`munet.data.contract`).

    Args:
        raw: ``{"__key__", "__url__", member name: bytes (or values decoded by Ray's default
            decoder)}`` from ``webdataset``, ``ray.data.read_webdataset`` or
            :meth:`ShardStore.iter_shard`.
        image_size: output side S; the stored image, mask, ``K`` and 2D joints are rescaled.
        cloth_points: N; the stored points are subsampled (randomly when ``augment``).
        augment: apply :func:`colour_jitter`.
        rng: random generator for augmentation (a fresh one when ``None``).
        colour: the strength of :func:`colour_jitter`.
        body: the trained body model's topology. With it, samples may hold some targets only
            (partial supervision): a missing target is filled with zeros and flagged 0, and a
            body mesh of another topology (e.g. SMPL data for an Anny model) is left out the same
            way. ``None``: every sample must hold every target, its body mesh taken as stored.
        source: the sample's index in ``data.sources`` (the contract's ``source``).

    Raises:
        SchemaError: a missing or unreadable member, a wrong schema version, targets that do not
            match ``meta.json``, a missing target without ``body``, or fewer stored cloth points
            than asked; the message names the shard and the key.
    """
    meta = read_meta(raw)
    camera = read_camera(raw)
    stored_body = read_body(raw)
    cloth = read_cloth(raw) if has_member(raw, CLOTH_MEMBER) else None
    image = read_image(raw)
    mask = read_mask(raw) if has_member(raw, MASK_MEMBER) else None
    record = SampleRecord(str(raw.get("__key__", "")), image, mask, camera, stored_body, cloth, [])
    check_targets(record, meta, raw)
    check_record(record, raw)
    if body is None and len(record.targets) < len(TARGETS):
        raise SchemaError(
            f"{sample_name(raw)} holds the targets {record.targets} only, and this reader was given no "
            "body topology to fill in the rest (partial supervision: Decoder(body=body_topology(config.body)))"
        )
    rng = rng if rng is not None else np.random.default_rng()
    scale = image_size / camera.image_size
    image = _resize(image, image_size)
    if augment:
        image = np.rint(colour_jitter(image.astype(np.float32) / 255.0, rng, colour) * 255.0).astype(np.uint8)
    sample = {
        "image": np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.uint8),
        "K": resize_intrinsics(camera.K, scale).astype(np.float32),
        "orthographic": _flag(camera.orthographic),
        "source": np.array(source, np.int64),
        **_mask_target(mask, image_size),
        **_body_targets(stored_body, body, scale),
        **_cloth_targets(cloth, cloth_points, augment, rng, raw),
    }
    return sample


def _flag(present: bool) -> np.ndarray:
    return np.array(1.0 if present else 0.0, np.float32)


def _mask_target(mask: np.ndarray | None, image_size: int) -> dict[str, np.ndarray]:
    """``mask`` (1, S, S) uint8 and ``has_mask``."""
    if mask is None:
        return {"mask": np.zeros((1, image_size, image_size), np.uint8), "has_mask": _flag(False)}
    resized = _resize(mask.astype(np.float32), image_size) >= 0.5
    return {"mask": resized[None].astype(np.uint8), "has_mask": _flag(True)}


def _body_targets(stored: BodyRecord, body: BodyTopology | None, scale: float) -> dict[str, np.ndarray]:
    """The body mesh, joint and 2D joint targets with their flags (see :func:`decode_sample`)."""
    if body is None:  # a full sample, taken as stored
        uses_mesh = True
    else:
        uses_mesh = (
            stored.has_mesh
            and stored.backend == body.name
            and stored.vertices.shape == (body.vertices, 3)
            and stored.pose.shape == (body.pose_dim,)
            and stored.shape.shape == (body.shape_dim,)
        )
    if uses_mesh:
        mesh = {"body_vertices": stored.vertices, "body_pose": stored.pose, "body_shape": stored.shape}
    else:
        mesh = {
            "body_vertices": np.zeros((body.vertices, 3), np.float32),
            "body_pose": np.zeros(body.pose_dim, np.float32),
            "body_shape": np.zeros(body.shape_dim, np.float32),
        }
    joints, valid = _joints(stored.joints, stored.joints_valid, 3)
    joints_2d, valid_2d = _joints(stored.joints_2d, stored.joints_2d_valid, 2)
    return {
        **mesh,
        "has_body_mesh": _flag(uses_mesh),
        "body_joints": joints,
        "joints_valid": valid,
        "joints_2d": resize_pixels(joints_2d, scale).astype(np.float32),
        "joints_2d_valid": valid_2d,
    }


def _joints(joints: np.ndarray | None, valid: np.ndarray | None, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(17, dims) joints and their (17,) validity: zeros for absent joints."""
    if joints is None:
        return np.zeros((17, dims), np.float32), np.zeros(17, np.float32)
    valid = np.ones(17, np.float32) if valid is None else (valid > 0.5).astype(np.float32)
    return np.where(valid[:, None] > 0, joints, 0.0).astype(np.float32), valid


def _cloth_targets(
    cloth: ClothRecord | None, cloth_points: int, augment: bool, rng: np.random.Generator, raw: dict[str, Any]
) -> dict[str, np.ndarray]:
    """``cloth_points`` of the stored surface samples (random ones when ``augment``), their normals
    and ``has_cloth``."""
    if cloth is None:
        zeros = np.zeros((cloth_points, 3), np.float32)
        return {"cloth_points": zeros, "cloth_normals": zeros.copy(), "has_cloth": _flag(False)}
    stored = len(cloth.points)
    if stored < cloth_points:
        raise SchemaError(
            f"{sample_name(raw)} stores {stored} cloth points but data.cloth_points is "
            f"{cloth_points}; lower data.cloth_points or regenerate the shards"
        )
    if stored == cloth_points:
        chosen = np.arange(stored)
    elif augment:
        chosen = rng.choice(stored, cloth_points, replace=False)
    else:
        chosen = np.arange(cloth_points)
    return {"cloth_points": cloth.points[chosen], "cloth_normals": cloth.normals[chosen], "has_cloth": _flag(True)}


def bad_data_policy(value: str) -> str:
    """The ``on_error`` policy ``"raise"`` or ``"skip"`` from ``"error"``, ``"raise"`` or ``"skip"``
    (``data.on_bad_sample`` says ``error``; ``raise`` is its older spelling).

    Raises:
        ValueError: any other value.
    """
    if value not in ON_ERROR:
        raise ValueError(f"data.on_bad_sample (on_error) must be 'error' or 'skip', got {value!r}")
    return "raise" if value == "error" else value


@dataclass
class Decoder:
    """:func:`decode_sample` with fixed settings and an error policy; picklable for Ray.

    Attributes:
        image_size, cloth_points, augment, colour: as in :func:`decode_sample`.
        on_error: ``"raise"`` (or ``"error"``) or ``"skip"`` (see the module docstring).
        body, source: as in :func:`decode_sample` (``body``: the trained model's topology, which
            allows samples with some targets only).
        skipped: number of samples skipped by this instance (local iteration).
        skip_counter: a handle on the Ray job's skip counter
            (:func:`munet.data.ray_dataset.skipped_samples`) that every skip is also added to; set by
            :func:`munet.data.ray_dataset.ray_dataset`.
        location: the shard folder, the counter's key.
    """

    image_size: int = DataConfig.image_size
    cloth_points: int = DataConfig.cloth_points
    augment: bool = False
    colour: float = AugmentConfig.colour
    on_error: str = "raise"
    body: BodyTopology | None = None
    source: int = 0
    skipped: int = 0
    skip_counter: Any = None
    location: str = ""

    def __post_init__(self) -> None:
        self.on_error = bad_data_policy(self.on_error)

    @classmethod
    def from_config(
        cls,
        data: DataConfig,
        augment: bool | None = None,
        on_error: str | None = None,
        body: BodyTopology | None = None,
    ) -> Decoder:
        """Settings from the ``data`` section (``augment`` defaults to ``data.augment``, ``on_error``
        to ``data.on_bad_sample``; ``colour`` is ``data.augmentation.colour``) and the trained
        body model's topology (see :func:`decode_sample`)."""
        return cls(
            image_size=data.image_size,
            cloth_points=data.cloth_points,
            augment=data.augment if augment is None else augment,
            colour=data.augmentation.colour,
            on_error=data.on_bad_sample if on_error is None else on_error,
            body=body,
        )

    def __call__(self, raw: dict[str, Any]) -> dict[str, np.ndarray]:
        """Decode one sample; always raises on bad data (see :meth:`decode_or_skip`)."""
        return decode_sample(
            raw,
            self.image_size,
            self.cloth_points,
            self.augment,
            colour=self.colour,
            body=self.body,
            source=self.source,
        )

    def skip(self, count: int, error: Exception) -> None:
        """Count ``count`` skipped samples and log ``error`` (which names them)."""
        self.skipped += count
        log.warning("skipping %d sample(s) (data.on_bad_sample: skip): %s", count, error)
        if self.skip_counter is not None:
            import ray

            ray.get(self.skip_counter.add.remote(self.location, count))

    def decode_or_skip(self, raw: dict[str, Any], decode: Callable[[dict[str, Any]], T] | None = None) -> list[T]:
        """``[decode(raw)]``, or ``[]`` for a bad sample under ``on_error="skip"`` (for ``flat_map``).

        ``decode`` defaults to this decoder (the training sample); evaluation also keeps the full
        record. It raises :class:`SchemaError` on bad data.
        """
        try:
            return [(decode or self)(raw)]
        except SchemaError as exc:
            if self.on_error == "raise":
                raise
            self.skip(1, exc)
            return []

    def read_and_decode(
        self, store: ShardStore, shard: ShardInfo, decode: Callable[[dict[str, Any]], T] | None = None
    ) -> Iterator[T]:
        """:meth:`decode_shard` on a shard read from ``store``; a shard that cannot be read any
        more (changed since it was listed) follows ``on_error`` like a damaged one."""
        try:
            data = store.read_shard(shard)
        except CorruptShardError as exc:
            if self.on_error == "raise":
                raise
            self.skip(shard.num_samples, exc)
            return
        yield from self.decode_shard(data, shard, store.uri(shard.name), decode)

    def decode_shard(
        self, data: bytes, shard: ShardInfo, url: str, decode: Callable[[dict[str, Any]], T] | None = None
    ) -> Iterator[T]:
        """The decoded samples of one whole shard file, checked against its manifest entry first.

        Args:
            data: the shard's bytes.
            shard: its manifest entry (size, SHA-256, sample count).
            url: its path or URI, for messages.
            decode: what each raw sample becomes (see :meth:`decode_or_skip`).

        Raises:
            CorruptShardError, SchemaError: bad data under ``on_error="raise"``. Under ``"skip"``
                a damaged shard is skipped whole (all its samples counted), a tar that breaks
                midway loses the rest of the shard, and a bad sample only itself.
        """
        try:
            verify_shard(data, shard, url, self.location or None)
        except CorruptShardError as exc:
            if self.on_error == "raise":
                raise
            self.skip(shard.num_samples, exc)
            return
        read = 0
        try:
            for raw in iter_tar_samples(io.BytesIO(data), url, self.location or None):
                read += 1
                yield from self.decode_or_skip(raw, decode)
        except CorruptShardError as exc:
            if self.on_error == "raise":
                raise
            self.skip(max(shard.num_samples - read, 1), exc)


def usable_shards(store: ShardStore, on_error: str = "raise") -> list[ShardInfo]:
    """The manifest's shards whose files exist with the recorded size (a cheap listing; the
    checksum is verified when a shard is read).

    Raises:
        ShardError: no/invalid manifest.
        CorruptShardError: under ``on_error="raise"``, a missing or wrongly sized (e.g.
            truncated) shard, named in the message.
    """
    usable, _ = usable_and_left_out(store, bad_data_policy(on_error))
    return usable


def usable_and_left_out(store: ShardStore, on_error: str) -> tuple[list[ShardInfo], list[ShardInfo]]:
    """The manifest's shards split into usable ones (their files exist with the recorded size) and
    those left out under ``on_error="skip"`` (each logged with its sample count); ``on_error`` is
    ``"raise"`` or ``"skip"`` (see :func:`bad_data_policy`).

    Raises:
        ShardError: no/invalid manifest.
        CorruptShardError: under ``on_error="raise"``, the first missing or wrongly sized shard.
    """
    usable, left_out = [], []
    sizes = store.sizes()  # one listing request, not one per shard
    for shard in store.read_manifest().shards:
        size = sizes.get(shard.name)
        if size == shard.size_bytes:
            usable.append(shard)
            continue
        problem = (
            f"shard {store.uri(shard.name)} is missing"
            if size is None
            else f"shard {store.uri(shard.name)} has {size} bytes, the manifest says "
            f"{shard.size_bytes} (truncated or rewritten)"
        )
        if on_error == "raise":
            raise CorruptShardError(f"{problem}; {fix_hint(store.location)}")
        log.warning("leaving out %s and its %d samples (data.on_bad_sample: skip)", problem, shard.num_samples)
        left_out.append(shard)
    return usable, left_out


def iter_samples(location: str, decoder: Decoder, decode: Callable[[dict[str, Any]], T] | None = None) -> Iterator[T]:
    """Decoded samples of a shard folder in key order, without Ray (evaluation, tools): the one
    reader of shard folders outside Ray Data. ``decode`` is what each raw sample becomes (default:
    ``decoder``'s training sample; see :meth:`Decoder.decode_or_skip`).

    Each shard is checked against the manifest (size, SHA-256) when read. Bad shards and samples
    follow ``decoder.on_error``; under ``"skip"``, ``decoder.skipped`` counts the samples skipped
    (all the samples of a shard left out).
    """
    store = ShardStore(location)
    if not decoder.location:
        decoder.location = store.location
    usable, left_out = usable_and_left_out(store, decoder.on_error)
    decoder.skipped += sum(shard.num_samples for shard in left_out)
    for shard in usable:
        yield from decoder.read_and_decode(store, shard, decode)
