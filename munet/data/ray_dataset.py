"""Ray Data datasets of decoded samples: the training stream read from a shard folder.

:func:`ray_dataset` reads whole shard files in Ray tasks and decodes them with a
:class:`~munet.data.decode.Decoder` (the decoded-sample contract of :mod:`munet.data.contract`), so
each row holds only the contract's arrays. Under ``data.on_bad_sample: skip`` the samples left out
are counted in one Ray actor per Ray job, which :func:`skipped_samples` reads.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Any

import numpy as np

from munet.config import DataConfig
from munet.data.decode import Decoder, bad_data_policy, usable_and_left_out
from munet.data.shards import ShardError, ShardInfo, ShardStore

if TYPE_CHECKING:
    import ray.data

SKIP_COUNTER_NAME = "munet_skipped_samples"
"""Name of the Ray actor that counts the samples skipped by the Ray datasets of one Ray job."""


class _SkipCounter:
    """Ray actor (created by :func:`ray_dataset` under ``"skip"``): skipped samples per folder."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, location: str, count: int) -> None:
        self.counts[location] = self.counts.get(location, 0) + int(count)

    def get(self) -> dict[str, int]:
        return dict(self.counts)


_counter_handle: tuple[str, Any] | None = None
"""This process's handle on the skip counter, with the Ray job it belongs to (Ray ends an actor
when no handle to it is left, so the driver keeps this one)."""


def _skip_counter(create: bool = False) -> Any:
    """The job's skip-counter actor handle (created when ``create``), or ``None``."""
    global _counter_handle
    import ray

    job = ray.get_runtime_context().get_job_id()
    if _counter_handle is None or _counter_handle[0] != job:
        if create:
            actor = ray.remote(num_cpus=0)(_SkipCounter)
            _counter_handle = (job, actor.options(name=SKIP_COUNTER_NAME, get_if_exists=True).remote())
        else:
            try:
                _counter_handle = (job, ray.get_actor(SKIP_COUNTER_NAME))
            except ValueError:
                return None
    return _counter_handle[1]


def skipped_samples() -> dict[str, int]:
    """Samples skipped so far under ``on_bad_sample: skip`` by the Ray datasets that
    :func:`ray_dataset` built in this Ray job: ``{shard folder: count}`` (empty when none; a shard
    left out whole counts all its samples). Call it from the driver or any worker of the job."""
    import ray

    if not ray.is_initialized():
        return {}
    counter = _skip_counter()
    return {} if counter is None else ray.get(counter.get.remote())


class _ShardFileDecoder:
    """Ray ``flat_map`` function: one row ``{"bytes", "path"}`` per shard file → its samples."""

    def __init__(self, decoder: Decoder, store: ShardStore, shards: list[ShardInfo]):
        self.decoder = decoder
        self.shards = {shard.name: shard for shard in shards}
        self.uris = {shard.name: store.uri(shard.name) for shard in shards}

    def __call__(self, row: dict[str, Any]) -> list[dict[str, np.ndarray]]:
        name = posixpath.basename(str(row["path"]))
        return list(self.decoder.decode_shard(row["bytes"], self.shards[name], self.uris[name]))


def ray_dataset(
    location: str,
    data: DataConfig,
    augment: bool | None = None,
    on_error: str | None = None,
    shuffle_files: bool = False,
) -> ray.data.Dataset:
    """A Ray Dataset of decoded samples (the contract above) from a shard folder.

    Shards come from the manifest, checked for existence and size against one listing of the
    folder. Each read task reads one whole shard file, verifies its SHA-256 and decodes its
    samples (bad data as ``on_error`` says; skips are counted for :func:`skipped_samples`). Each
    row holds only the contract's arrays (:mod:`munet.data.contract`), so ``iter_torch_batches``
    works on it directly.

    Ray Data sizes the decoding itself: each task reserves ``data.decode_cpus`` logical CPUs,
    and Ray Data runs as many at once as the CPUs left free by the training workers allow,
    growing with the cluster as nodes join (Ray Train tells Ray Data what its workers hold). Nothing is
    read from the cluster when the dataset is built, so it may be built before the workers are
    placed. Nodes that offer no CPU (a head started with ``--num-cpus=0``) run no decoding.

    Args:
        location: shard folder or object-store URI.
        data: the ``data`` section: ``image_size``, ``cloth_points``, ``augment``,
            ``augmentation.colour``, ``on_bad_sample``, ``decode_cpus`` and ``seed`` are used.
        augment: override ``data.augment``.
        on_error: override ``data.on_bad_sample``: ``"error"``/``"raise"`` or ``"skip"`` (see
            :mod:`munet.data.decode`).
        shuffle_files: read the shards in a random order, a new one for every pass (seeded by
            ``data.seed``).
    """
    import ray.data

    policy = bad_data_policy(data.on_bad_sample if on_error is None else on_error)
    store = ShardStore(location)
    shards, left_out = usable_and_left_out(store, policy)
    if not shards:
        raise ShardError(f"{location}: no usable shards")
    decoder = Decoder.from_config(data, augment=augment, on_error=policy)
    decoder.location = store.location
    if policy == "skip":
        decoder.skip_counter = _skip_counter(create=True)
        ray.get(decoder.skip_counter.add.remote(store.location, sum(shard.num_samples for shard in left_out)))
    # The read and the decoding ask for the same resources, so Ray fuses them: one task per shard.
    files = ray.data.read_binary_files(
        [store.path(shard.name) for shard in shards],
        include_paths=True,
        filesystem=store.fs,
        shuffle=ray.data.FileShuffleConfig(seed=data.seed) if shuffle_files else None,
        num_cpus=data.decode_cpus,
        override_num_blocks=len(shards),
    )
    return files.flat_map(_ShardFileDecoder(decoder, store, shards), num_cpus=data.decode_cpus)
