"""Raw WebDataset samples → the fixed-size float32 arrays training consumes.

The decoded-sample contract (S = ``data.image_size``, N = ``data.cloth_points``):

================= ============ ==================================================================
``image``         (3, S, S)    RGB in [0, 1]
``mask``          (1, S, S)    {0, 1}
``K``             (3, 3)       intrinsics in pixels of the S × S image
``body_vertices`` (V, 3)       camera frame, metres
``body_joints``   (17, 3)      COCO-17, camera frame, metres
``joints_2d``     (17, 2)      pixels of the S × S image
``body_pose``     (P,)         body-model pose parameters
``body_shape``    (B,)         body-model shape parameters
``cloth_points``  (N, 3)       uniform samples of the clothed surface, camera frame, metres
``cloth_normals`` (N, 3)       their outward unit normals
================= ============ ==================================================================

Augmentation (``augment``) here is photometric only: brightness, contrast and saturation
(:func:`colour_jitter`, strength ``data.augmentation.colour``) and a random choice of the cloth
points. The geometric augmentation (crop zoom and shift, horizontal flip with the left/right swap)
changes ``K``, the 2D joints, the 3D targets and the body-model pose together, and needs the body
mesh's left/right vertex correspondence, which lives with the model: it runs on the batch in the
training step (:mod:`munet.train.augment`).

Error policy (``on_error``): ``"raise"`` (default) stops at the first bad sample or shard with an
error naming the shard and the key; ``"skip"`` drops it, logs a warning naming it, and counts it
(:attr:`Decoder.skipped` when iterating locally; with Ray each skipped sample is a warning in the
worker log, which Ray forwards to the driver). A shard whose size differs from the manifest (e.g.
truncated) is a :class:`~munet.data.shards.ShardError` under ``"raise"`` and is left out under
``"skip"``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from munet.config import AugmentConfig, DataConfig, MuNetConfig
from munet.data.camera import resize_intrinsics, resize_pixels
from munet.data.schema import (
    SchemaError,
    read_body,
    read_camera,
    read_cloth,
    read_image,
    read_mask,
    read_meta,
    sample_name,
)
from munet.data.shards import ShardError, ShardInfo, ShardStore

if TYPE_CHECKING:
    import ray.data

log = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")
"""Valid values of the ``on_error`` policy."""


def colour_jitter(
    image: np.ndarray, rng: np.random.Generator, strength: float = AugmentConfig.colour
) -> np.ndarray:
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
) -> dict[str, np.ndarray]:
    """Decode one raw sample into the decoded-sample contract (see the module docstring).

    Args:
        raw: ``{"__key__", "__url__", member name: bytes (or values decoded by Ray's default
            decoder)}`` from ``webdataset``, ``ray.data.read_webdataset`` or
            :meth:`ShardStore.iter_shard`.
        image_size: output side S; the stored image, mask, ``K`` and 2D joints are rescaled.
        cloth_points: N; the stored points are subsampled (randomly when ``augment``).
        augment: apply :func:`colour_jitter`.
        rng: random generator for augmentation (a fresh one when ``None``).
        colour: the strength of :func:`colour_jitter`.

    Raises:
        SchemaError: a missing or unreadable member, a wrong schema version, or fewer stored
            cloth points than asked; the message names the shard and the key.
    """
    read_meta(raw)
    camera = read_camera(raw)
    body = read_body(raw)
    cloth = read_cloth(raw)
    image = read_image(raw)
    mask = read_mask(raw)
    if image.shape[:2] != (camera.image_size,) * 2 or mask.shape != image.shape[:2]:
        raise SchemaError(
            f"{sample_name(raw)}: image {image.shape} / mask {mask.shape} do not match "
            f"camera.image_size {camera.image_size}"
        )
    stored = len(cloth.points)
    if stored < cloth_points:
        raise SchemaError(
            f"{sample_name(raw)} stores {stored} cloth points but data.cloth_points is "
            f"{cloth_points}; lower data.cloth_points or regenerate the shards"
        )
    rng = rng if rng is not None else np.random.default_rng()
    if stored == cloth_points:
        chosen = np.arange(stored)
    elif augment:
        chosen = rng.choice(stored, cloth_points, replace=False)
    else:
        chosen = np.arange(cloth_points)
    scale = image_size / camera.image_size
    image = _resize(image.astype(np.float32) / 255.0, image_size)
    if augment:
        image = colour_jitter(image, rng, colour)
    mask = _resize(mask.astype(np.float32), image_size) >= 0.5
    return {
        "image": np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32),
        "mask": mask[None].astype(np.float32),
        "K": resize_intrinsics(camera.K, scale).astype(np.float32),
        "body_vertices": body.vertices,
        "body_joints": body.joints,
        "joints_2d": resize_pixels(body.joints_2d, scale).astype(np.float32),
        "body_pose": body.pose,
        "body_shape": body.shape,
        "cloth_points": cloth.points[chosen],
        "cloth_normals": cloth.normals[chosen],
    }


def _data_section(config: DataConfig | MuNetConfig) -> DataConfig:
    """The data settings of a whole configuration, or the data settings themselves."""
    return config.data if isinstance(config, MuNetConfig) else config


@dataclass
class Decoder:
    """:func:`decode_sample` with fixed settings and an error policy; picklable for Ray.

    Attributes:
        image_size, cloth_points, augment, colour: as in :func:`decode_sample`.
        on_error: ``"raise"`` or ``"skip"`` (see the module docstring).
        skipped: number of samples skipped by this instance (local iteration).
    """

    image_size: int = DataConfig.image_size
    cloth_points: int = DataConfig.cloth_points
    augment: bool = False
    colour: float = AugmentConfig.colour
    on_error: str = "raise"
    skipped: int = 0

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {self.on_error!r}")

    @classmethod
    def from_config(
        cls, config: DataConfig | MuNetConfig, augment: bool | None = None, on_error: str = "raise"
    ) -> Decoder:
        """Settings from ``config.data`` (``augment`` defaults to ``data.augment``; ``colour`` is
        ``data.augmentation.colour``)."""
        data = _data_section(config)
        return cls(
            image_size=data.image_size,
            cloth_points=data.cloth_points,
            augment=data.augment if augment is None else augment,
            colour=data.augmentation.colour,
            on_error=on_error,
        )

    def __call__(self, raw: dict[str, Any]) -> dict[str, np.ndarray]:
        """Decode one sample; always raises on bad data (see :meth:`decode_or_skip`)."""
        return decode_sample(raw, self.image_size, self.cloth_points, self.augment, colour=self.colour)

    def decode_or_skip(self, raw: dict[str, Any]) -> list[dict[str, np.ndarray]]:
        """``[decoded]``, or ``[]`` for a bad sample under ``on_error="skip"`` (for ``flat_map``)."""
        try:
            return [self(raw)]
        except SchemaError as exc:
            if self.on_error == "raise":
                raise
            self.skipped += 1
            log.warning("skipping bad sample (on_error='skip'): %s", exc)
            return []


def usable_shards(store: ShardStore, on_error: str = "raise") -> list[ShardInfo]:
    """The manifest's shards whose files exist with the recorded size.

    Raises:
        ShardError: no/invalid manifest; or, under ``on_error="raise"``, a missing or wrongly
            sized (e.g. truncated) shard, named in the message.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    usable = []
    for shard in store.read_manifest().shards:
        size = store.size(shard.name)
        if size == shard.size_bytes:
            usable.append(shard)
            continue
        problem = (
            f"shard {store.path(shard.name)} is missing"
            if size is None
            else f"shard {store.path(shard.name)} has {size} bytes, the manifest says "
            f"{shard.size_bytes} (truncated or rewritten)"
        )
        if on_error == "raise":
            raise ShardError(f"{problem}; run `python -m munet.data check {store.location}`")
        log.warning("leaving out %s (on_error='skip')", problem)
    return usable


def iter_samples(location: str, decoder: Decoder) -> Iterator[dict[str, np.ndarray]]:
    """Decoded samples of a shard folder in key order, without Ray (evaluation, tools).

    Bad shards and samples follow ``decoder.on_error``; under ``"skip"``, ``decoder.skipped``
    counts each skipped sample and each shard whose unreadable rest was skipped.
    """
    store = ShardStore(location)
    for shard in usable_shards(store, decoder.on_error):
        try:
            for raw in store.iter_shard(shard.name):
                yield from decoder.decode_or_skip(raw)
        except ShardError as exc:
            if decoder.on_error == "raise":
                raise
            decoder.skipped += 1
            log.warning("skipping the rest of a bad shard (on_error='skip'): %s", exc)


def ray_dataset(
    location: str,
    config: DataConfig | MuNetConfig,
    augment: bool | None = None,
    on_error: str = "raise",
    shuffle_files: bool = False,
    num_cpus: float = 0.0,
    concurrency: int | None = None,
) -> ray.data.Dataset:
    """A Ray Dataset of decoded samples (the contract above) from a shard folder.

    Shards come from the manifest (checked for existence and size first). Each row holds only the
    contract's arrays (``__key__``/``__url__`` are dropped), so ``iter_torch_batches`` works on it
    directly.

    Args:
        location: shard folder or object-store URI.
        config: ``data.image_size``, ``data.cloth_points``, ``data.augment``,
            ``data.augmentation.colour`` and ``data.seed`` are used.
        augment: override ``data.augment``.
        on_error: ``"raise"`` or ``"skip"`` (see the module docstring).
        shuffle_files: read the shards in a random order, a new one for every pass (seeded by
            ``data.seed``).
        num_cpus: logical CPUs each read and decode task reserves. The default 0 keeps reading from
            starving when training workers hold every CPU (see DESIGN §8).
        concurrency: most read-and-decode tasks running at once (default: the cluster's logical
            CPUs). Tasks that reserve no CPU are otherwise unbounded, and every extra task may
            start another Python worker process. Each shard is one task (Ray fuses the read and
            the decoding), so more shards than this keep every task busy.
    """
    import ray.data

    store = ShardStore(location)
    shards = usable_shards(store, on_error)
    if not shards:
        raise ShardError(f"{location}: no usable shards")
    decoder = Decoder.from_config(config, augment=augment, on_error=on_error)
    if concurrency is None:
        concurrency = max(1, int(ray.cluster_resources().get("CPU", 1)))
    concurrency = min(concurrency, len(shards))  # one read-and-decode task per shard at most
    dataset = ray.data.read_webdataset(
        [store.path(shard.name) for shard in shards],
        filesystem=store.fs,
        decoder=None,
        shuffle=ray.data.FileShuffleConfig(seed=_data_section(config).seed) if shuffle_files else None,
        num_cpus=num_cpus,
        concurrency=concurrency,
        override_num_blocks=len(shards),
    )
    tasks = ray.data.TaskPoolStrategy(size=concurrency)
    if on_error == "skip":
        return dataset.flat_map(decoder.decode_or_skip, compute=tasks, num_cpus=num_cpus)
    return dataset.map(decoder, compute=tasks, num_cpus=num_cpus)
