"""Ray Data datasets of decoded samples: the training stream read from a shard folder or from a
weighted mixture of them.

:func:`ray_dataset` reads whole shard files of one folder in Ray tasks and decodes them with a
:class:`~munet.data.decode.Decoder` (the decoded-sample contract of :mod:`munet.data.contract`), so
each row holds only the contract's arrays; :func:`mixture_dataset` does the same for the sources of
``data.sources``, each drawn in proportion to its weight (:func:`mixture_plan`). Under
``data.on_bad_sample: skip`` the samples left out are counted in one Ray actor per Ray job, which
:func:`skipped_samples` reads.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

import numpy as np

from munet.body import BodyTopology
from munet.config import DataConfig, DataSource
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


def _source(
    location: str,
    data: DataConfig,
    policy: str,
    augment: bool | None,
    body: BodyTopology | None,
    index: int = 0,
) -> tuple[ShardStore, list[ShardInfo], Decoder]:
    """One shard folder's store, usable shards and decoder (skips of left-out shards counted).

    Raises:
        ShardError: no manifest, or no usable shard.
        CorruptShardError: under ``"raise"``, a missing or wrongly sized shard.
    """
    import ray

    store = ShardStore(location)
    shards, left_out = usable_and_left_out(store, policy)
    if not shards:
        raise ShardError(f"{location}: no usable shards")
    decoder = Decoder.from_config(data, augment=augment, on_error=policy, body=body)
    decoder.location, decoder.source = store.location, index
    if policy == "skip":
        decoder.skip_counter = _skip_counter(create=True)
        ray.get(decoder.skip_counter.add.remote(store.location, sum(shard.num_samples for shard in left_out)))
    return store, shards, decoder


def ray_dataset(
    location: str,
    data: DataConfig,
    augment: bool | None = None,
    on_error: str | None = None,
    shuffle_files: bool = False,
    body: BodyTopology | None = None,
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
        body: the trained body model's topology: samples may then hold some targets only
            (:func:`munet.data.decode.decode_sample`); ``None``: every sample holds every target.
    """
    import ray.data

    policy = bad_data_policy(data.on_bad_sample if on_error is None else on_error)
    store, shards, decoder = _source(location, data, policy, augment, body)
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


@dataclass(frozen=True)
class ShardDraw:
    """One read task of a mixture: the first ``samples`` samples of a shard of a source."""

    source: int
    shard: str
    samples: int


def mixture_plan(sizes: Sequence[Sequence[tuple[str, int]]], weights: Sequence[float], seed: int) -> list[ShardDraw]:
    """The shard reads of one pass over a weighted mixture.

    A pass holds as many samples as the sources together (``T``); source ``i`` gives
    ``round(T · w_i / Σ w)`` of them, read from its shards in a seeded random order, cycling
    through them again when its share is larger than the source (the last read of a source may
    take part of a shard). The reads of all sources are then shuffled together.

    Args:
        sizes: per source, ``(shard name, sample count)`` of each usable shard.
        weights: per source, a positive weight.
        seed: the order's seed.

    Raises:
        ValueError: a weight that is not positive, or a source without samples.
    """
    if len(sizes) != len(weights) or not sizes:
        raise ValueError(f"{len(sizes)} source(s) but {len(weights)} weight(s)")
    if any(not weight > 0 for weight in weights):
        raise ValueError(f"data.sources weights must be positive, got {list(weights)}")
    rng = np.random.default_rng(seed)
    total = sum(count for shards in sizes for _, count in shards)
    plan: list[ShardDraw] = []
    for index, (shards, weight) in enumerate(zip(sizes, weights)):
        if not sum(count for _, count in shards):
            raise ValueError(f"data.sources[{index}] holds no samples")
        quota = round(total * weight / sum(weights))
        while quota > 0:
            for position in rng.permutation(len(shards)):
                name, count = shards[position]
                take = min(count, quota)
                plan.append(ShardDraw(index, name, take))
                quota -= take
                if quota == 0:
                    break
    return [plan[i] for i in rng.permutation(len(plan))]


class _MixtureDecoder:
    """Ray ``flat_map`` function: one :class:`ShardDraw` row → its decoded samples."""

    def __init__(self, sources: list[tuple[ShardStore, list[ShardInfo], Decoder]]):
        self.sources = [(store, {shard.name: shard for shard in shards}, decoder) for store, shards, decoder in sources]

    def __call__(self, row: dict[str, Any]) -> list[dict[str, np.ndarray]]:
        store, shards, decoder = self.sources[int(row["source"])]
        samples = decoder.read_and_decode(store, shards[str(row["shard"])])
        return list(islice(samples, int(row["samples"])))


def mixture_dataset(
    sources: Sequence[DataSource],
    data: DataConfig,
    augment: bool | None = None,
    on_error: str | None = None,
    body: BodyTopology | None = None,
) -> ray.data.Dataset:
    """A Ray Dataset of decoded samples drawn from several shard folders by weight
    (``data.sources``; :func:`mixture_plan`, seeded by ``data.seed``). Each row's ``source`` is its
    source's index. Reading, decoding and bad data as in :func:`ray_dataset`, one task per shard
    read.

    Raises:
        ShardError: a source without a manifest or usable shards (the message names it).
        ValueError: a weight that is not positive.
    """
    import ray.data

    policy = bad_data_policy(data.on_bad_sample if on_error is None else on_error)
    prepared = [_source(source.path, data, policy, augment, body, index) for index, source in enumerate(sources)]
    plan = mixture_plan(
        [[(shard.name, shard.num_samples) for shard in shards] for _, shards, _ in prepared],
        [source.weight for source in sources],
        data.seed,
    )
    rows = [{"source": draw.source, "shard": draw.shard, "samples": draw.samples} for draw in plan]
    reads = ray.data.from_items(rows, override_num_blocks=len(rows))
    return reads.flat_map(_MixtureDecoder(prepared), num_cpus=data.decode_cpus)
