"""Synthetic data generation: procedural clothed humans → rendered samples → shards, with Ray Data.

Sample ``n`` shows subject ``n // views`` from view ``n % views``; shard ``k`` holds samples
``k · samples_per_shard …``. Every random choice is drawn from a generator seeded by
``(seed, stream, subject[, view])``, so a sample depends only on the seed and its index: the same
seed gives identical samples (and identical shard bytes) whatever the number of workers or the
shard size.

:func:`generate_shards` runs as a Ray Data job: the list of shard indices mapped by a pool of
actors, each of which builds the body model and an OpenGL renderer once and writes whole shards;
the driver writes the manifest when every shard is done. :func:`generate_shards_here` writes the
same shards in the calling process, for sets too small to be worth starting Ray.

Interrupted runs continue, and the manifest never describes a half-written set:

- while a job runs, ``generation.json`` (:data:`~munet.data.shards.PROGRESS_NAME`) records its
  settings (generation and body model) and each shard completed so far with its size and SHA-256;
  each shard is written under a temporary name and renamed when complete;
- ``manifest.json`` is written last, then ``generation.json`` is deleted; ``overwrite`` deletes
  the old manifest (and the old shards) before writing anything;
- a re-run into a folder without a manifest whose ``generation.json`` has the same settings keeps
  every recorded shard whose file still has the recorded size and SHA-256, and writes only the
  others; other settings are an error (re-run with them, or overwrite).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from munet.config import BodyConfig, DataConfig
from munet.data.camera import CameraSettings, sample_camera
from munet.data.render import Renderer
from munet.data.scene import sample_background, sample_lighting
from munet.data.schema import BodyRecord, ClothRecord, SampleRecord, encode_sample, make_key
from munet.data.shards import (
    MANIFEST_NAME,
    PROGRESS_NAME,
    Manifest,
    ShardError,
    ShardInfo,
    ShardStore,
    shard_name,
)
from munet.geometry import face_normals, project

if TYPE_CHECKING:
    from munet.data.synth import ClothedHuman

log = logging.getLogger(__name__)

_GEOMETRY, _VIEW, _SURFACE = 0, 1, 2
"""Independent random streams per subject: geometry, per-view camera/light/background, points."""


@dataclass(frozen=True)
class GenerationSettings:
    """What to generate.

    Attributes:
        num_samples: total number of samples (views).
        seed: base seed.
        image_size: stored crop side S, pixels (training resizes to ``data.image_size``).
        samples_per_shard: samples per tar shard.
        views: views rendered per subject. Geometry costs about 0.75 s per subject on one core and
            rendering about 0.1 s per view at 256², so 4 views per subject triple the throughput.
        cloth_points: surface points with normals stored per sample.
        image_format: ``jpg`` or ``png``.
        supersample: rendering super-sampling factor (anti-aliased RGB, binary mask).
        source: first part of every key.
        camera: random-camera ranges.
    """

    num_samples: int
    seed: int = 0
    image_size: int = 256
    samples_per_shard: int = DataConfig.samples_per_shard
    views: int = 4
    cloth_points: int = DataConfig.cloth_points
    image_format: str = "jpg"
    supersample: int = 2
    source: str = "synthetic"
    camera: CameraSettings = CameraSettings()

    def __post_init__(self) -> None:
        for name in ("num_samples", "image_size", "samples_per_shard", "views", "cloth_points"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def num_shards(self) -> int:
        """Number of shards."""
        return -(-self.num_samples // self.samples_per_shard)

    def shard_samples(self, shard: int) -> range:
        """Indices of the samples in shard ``shard``."""
        start = shard * self.samples_per_shard
        return range(start, min(start + self.samples_per_shard, self.num_samples))

    def key(self, index: int) -> str:
        """Key of sample ``index``; zero-padded so keys sort like indices."""
        subjects = -(-self.num_samples // self.views)
        subject, view = divmod(index, self.views)
        subject_width = max(7, len(str(subjects - 1)))
        view_width = max(2, len(str(self.views - 1)))
        return make_key(self.source, f"{subject:0{subject_width}d}", f"{view:0{view_width}d}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (for the manifest)."""
        return dataclasses.asdict(self)


def sample_rng(seed: int, *path: int) -> np.random.Generator:
    """The random generator of stream ``path`` (e.g. ``(stream, subject, view)``) under ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, *path]))


def sample_surface(
    rng: np.random.Generator, vertices: np.ndarray, faces: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Points uniformly distributed on a triangle mesh, with its face normals.

    Args:
        vertices: (V, 3); faces: (F, 3) outward-wound.

    Returns:
        points (count, 3) and unit normals (count, 3), float64.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    corners = vertices[faces]
    cross = face_normals(vertices, faces)
    doubled_area = np.linalg.norm(cross, axis=1)
    if doubled_area.sum() <= 0:
        raise ValueError("cannot sample a mesh with zero area")
    chosen = rng.choice(len(faces), size=count, p=doubled_area / doubled_area.sum())
    root, second = np.sqrt(rng.random(count)), rng.random(count)
    weights = np.stack([1 - root, root * (1 - second), root * second], axis=1)
    points = np.einsum("nk,nkc->nc", weights, corners[chosen])
    normals = cross[chosen] / doubled_area[chosen, None]
    return points, normals


@dataclass
class _Subject:
    """One generated person in the world frame, with its sampled surface points."""

    human: ClothedHuman
    points: np.ndarray
    normals: np.ndarray


class SampleGenerator:
    """Makes samples by index: owns a body model and a renderer (build once per process).

    Attributes:
        timings: seconds spent so far in ``geometry`` (clothed human + surface points),
            ``render`` (camera, background, rasterisation) and ``encode`` (image/array encoding).
        geometry_stages: seconds per stage of the clothed-human generator (its own breakdown).
    """

    def __init__(self, settings: GenerationSettings, body_config: BodyConfig | None = None):
        from munet.body import build_body_model
        from munet.data.synth import ClothedHumanSampler, ClothLabel

        self.settings = settings
        self.body = build_body_model(body_config or BodyConfig())
        self.humans = ClothedHumanSampler(self.body)
        self.face_label_names = [label.name.lower() for label in ClothLabel]
        self.renderer = Renderer(settings.image_size, settings.supersample)
        self.timings = {"geometry": 0.0, "render": 0.0, "encode": 0.0}
        self.geometry_stages: dict[str, float] = {}
        self._subject: tuple[int, _Subject] | None = None

    def subject(self, index: int) -> _Subject:
        """Subject ``index`` (the last one is cached: its views are consecutive samples)."""
        if self._subject is not None and self._subject[0] == index:
            return self._subject[1]
        start = time.perf_counter()
        seed = self.settings.seed
        with torch.no_grad():
            human = self.humans(sample_rng(seed, _GEOMETRY, index))
        for stage, seconds in human.timings.items():
            self.geometry_stages[stage] = self.geometry_stages.get(stage, 0.0) + seconds
        points, normals = sample_surface(
            sample_rng(seed, _SURFACE, index),
            human.cloth_vertices,
            human.cloth_faces,
            self.settings.cloth_points,
        )
        subject = _Subject(human=human, points=points, normals=normals)
        self._subject = (index, subject)
        self.timings["geometry"] += time.perf_counter() - start
        return subject

    def record(self, index: int) -> SampleRecord:
        """Sample ``index``: geometry, a random camera, light and background, rendered."""
        settings = self.settings
        subject_index, view = divmod(index, settings.views)
        subject = self.subject(subject_index)
        human = subject.human
        start = time.perf_counter()
        rng = sample_rng(settings.seed, _VIEW, subject_index, view)
        camera = sample_camera(rng, human.cloth_vertices, settings.image_size, settings.camera)
        cloth_vertices = camera.world_to_camera(human.cloth_vertices)
        frame = self.renderer.render(
            cloth_vertices,
            human.cloth_faces,
            human.cloth_vertex_colors,
            camera.K,
            sample_lighting(rng),
            sample_background(rng, settings.image_size),
        )
        joints = camera.world_to_camera(human.body_joints)
        record = SampleRecord(
            key=settings.key(index),
            image=frame.image,
            mask=frame.mask,
            normal=frame.normal,
            camera=camera,
            body=BodyRecord(
                backend=self.body.name,
                pose=np.asarray(human.pose),
                shape=np.asarray(human.shape),
                vertices=camera.world_to_camera(human.body_vertices),
                joints=joints,
                joints_2d=project(joints, camera.K),
            ),
            cloth=ClothRecord(
                vertices=cloth_vertices,
                faces=human.cloth_faces,
                face_labels=human.cloth_face_labels,
                points=camera.world_to_camera(subject.points),
                normals=camera.directions_to_camera(subject.normals),
            ),
            garments=list(human.garments),
            extra_meta={
                "subject": subject_index,
                "view": view,
                "seed": settings.seed,
                "pose_family": human.pose_family,
                "face_label_names": self.face_label_names,
            },
        )
        self.timings["render"] += time.perf_counter() - start
        return record

    def members(self, index: int) -> tuple[str, dict[str, bytes]]:
        """Key and encoded members of sample ``index``."""
        record = self.record(index)
        start = time.perf_counter()
        members = encode_sample(record, self.settings.image_format)
        self.timings["encode"] += time.perf_counter() - start
        return record.key, members

    def write_shard(self, store: ShardStore, shard: int) -> ShardInfo:
        """Generate and write shard ``shard`` (atomically) into ``store``."""
        with store.writer(shard_name(shard)) as writer:
            for index in self.settings.shard_samples(shard):
                writer.write(*self.members(index))
        return writer.info

    def close(self) -> None:
        """Release the renderer."""
        self.renderer.close()


class _ShardJob:
    """Ray Data actor: one :class:`SampleGenerator` per process, writes the shards it is given."""

    def __init__(self, settings: GenerationSettings, location: str, body_config: BodyConfig | None):
        self.generator = SampleGenerator(settings, body_config)
        self.store = ShardStore(location)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        infos = [self.generator.write_shard(self.store, int(shard)) for shard in batch["shard"]]
        return {
            field.name: np.array([getattr(info, field.name) for info in infos])
            for field in dataclasses.fields(ShardInfo)
        }


def generate_shards(
    out: str,
    settings: GenerationSettings | None = None,
    *,
    body_config: BodyConfig | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    **fields: Any,
) -> Manifest:
    """Generate a shard folder with Ray Data (Ray must be up: see :func:`munet.ray_utils.init_ray`).

    >>> generate_shards("/data/synth", num_samples=64, seed=0, image_size=128)

    Args:
        out: output folder or object-store URI.
        settings: what to generate; or give :class:`GenerationSettings` fields as keywords.
        body_config: body model (default Anny; each node builds its cache on first use).
        workers: parallel writer actors (default: the cluster's CPUs, at most one per shard).
        overwrite: replace an existing shard folder: its manifest is deleted first, then its
            shards; otherwise a folder with a manifest is an error, and one left by an interrupted
            run with the same settings is continued (see the module docstring).

    Returns:
        The manifest, also written to ``out/manifest.json``.

    Raises:
        FileExistsError: ``out`` holds a manifest, or another generation's files (without
            ``overwrite``).
    """
    import ray

    if settings is None:
        settings = GenerationSettings(**fields)
    elif fields:
        raise TypeError(f"give either settings or GenerationSettings fields, not both: {sorted(fields)}")
    progress = _Progress.start(out, settings, body_config, overwrite)
    remaining = progress.remaining()
    if not remaining:
        return progress.finish()
    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
    workers = min(workers, len(remaining))
    # from_items builds the shard list on the driver: a read task would need a CPU of its own,
    # and with every CPU held by a writer actor it would never run.
    shards = ray.data.from_items([{"shard": shard} for shard in remaining])
    dataset = shards.map_batches(
        _ShardJob,
        fn_constructor_args=(settings, out, body_config),
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    log.info(
        "generating %d samples in %d shards with %d workers into %s",
        sum(len(settings.shard_samples(shard)) for shard in remaining),
        len(remaining),
        workers,
        out,
    )
    start = time.perf_counter()
    written = 0
    for row in dataset.iter_rows():
        info = ShardInfo(**{k: v.item() if hasattr(v, "item") else v for k, v in row.items()})
        progress.add(info)
        written += info.num_samples
        log.info(
            "shard %s written (%d/%d shards done, %.2f samples/s)",
            info.name,
            len(progress.done),
            settings.num_shards,
            written / (time.perf_counter() - start),
        )
    return progress.finish()


def generate_shards_here(
    out: str,
    settings: GenerationSettings,
    *,
    body_config: BodyConfig | None = None,
    overwrite: bool = False,
) -> Manifest:
    """Generate a shard folder in this process, one shard after the other, without Ray.

    For small sets (tests, benchmarks), where starting Ray costs more than generating: the
    samples and shard bytes are those :func:`generate_shards` writes with the same settings, and
    interrupted runs continue the same way.

    Args:
        out: output folder or object-store URI.
        settings: what to generate.
        body_config: body model (default Anny).
        overwrite: as in :func:`generate_shards`.

    Returns:
        The manifest, also written to ``out/manifest.json``.

    Raises:
        FileExistsError: ``out`` already holds a manifest, or another generation's files
            (without ``overwrite``).
    """
    progress = _Progress.start(out, settings, body_config, overwrite)
    remaining = progress.remaining()
    if remaining:
        generator = SampleGenerator(settings, body_config)
        try:
            for shard in remaining:
                info = generator.write_shard(progress.store, shard)
                progress.add(info)
                log.info("shard %s written (%d/%d shards done)", info.name, len(progress.done), settings.num_shards)
        finally:
            generator.close()
    return progress.finish()


def _is_shard_file(name: str) -> bool:
    """A shard, or a temporary file of one being written (``shard-000001.tar.partial-…``)."""
    return name.startswith("shard-") and (name.endswith(".tar") or ".tar.partial-" in name)


class _Progress:
    """The generation record of one output folder (``generation.json``, see the module docstring).

    Attributes:
        store: the output folder.
        settings: what is generated.
        record: the settings as recorded (``generator``, ``seed``, ``body``), JSON-ready.
        done: completed shards by index.
    """

    def __init__(self, store: ShardStore, settings: GenerationSettings, record: dict[str, Any]):
        self.store = store
        self.settings = settings
        self.record = record
        self.done: dict[int, ShardInfo] = {}

    @classmethod
    def start(
        cls, out: str, settings: GenerationSettings, body_config: BodyConfig | None, overwrite: bool
    ) -> _Progress:
        """Prepare ``out`` for a generation: refuse, continue or start over (see the module
        docstring), then record the settings and the shards kept."""
        store = ShardStore(out)
        body = dataclasses.asdict(body_config or BodyConfig())
        # Through JSON, so that tuples compare equal to what the file holds.
        record = json.loads(json.dumps({"generator": settings.to_dict(), "seed": settings.seed, "body": body}))
        progress = cls(store, settings, record)
        names = store.list_names()
        if overwrite:
            if store.delete(MANIFEST_NAME):  # first: no reader may take the folder for a whole set
                log.info("--overwrite: deleted %s", store.uri(MANIFEST_NAME))
            store.delete(PROGRESS_NAME)
            old = [name for name in names if _is_shard_file(name)]
            for name in old:
                store.delete(name)
            if old:
                log.info("--overwrite: deleted %d old shard file(s) in %s", len(old), out)
        elif MANIFEST_NAME in names:
            raise FileExistsError(
                f"{out} already holds a {MANIFEST_NAME}; choose another output or pass --overwrite "
                "(overwrite=True) to replace it"
            )
        elif PROGRESS_NAME in names:
            progress._resume(names)
        elif any(_is_shard_file(name) for name in names):
            raise FileExistsError(
                f"{out} holds shard files but neither a {MANIFEST_NAME} nor a {PROGRESS_NAME}: they "
                "were not written by this job; choose another output or pass --overwrite "
                "(overwrite=True) to replace them"
            )
        progress._save()
        return progress

    def _resume(self, names: list[str]) -> None:
        """Keep the shards an interrupted run with the same settings completed."""
        store = self.store
        try:
            recorded = json.loads(store.read_bytes(PROGRESS_NAME))
            settings, shards = recorded["settings"], [ShardInfo(**info) for info in recorded["shards"]]
        except (ValueError, KeyError, TypeError, ShardError) as exc:
            raise FileExistsError(
                f"{store.uri(PROGRESS_NAME)} is unreadable ({exc!r}); pass --overwrite (overwrite=True) to start over"
            ) from exc
        if settings != self.record:
            differ = _differences(settings, self.record)
            raise FileExistsError(
                f"{self.store.location} holds an unfinished generation with other settings "
                f"(differing: {', '.join(differ)}; see {PROGRESS_NAME}); re-run "
                "with those settings to continue it, or pass --overwrite (overwrite=True) to "
                "start over"
            )
        for info in shards:
            index = _shard_index(info.name)
            if index is None or index >= self.settings.num_shards:
                continue
            try:
                data = store.read_bytes(info.name)
            except ShardError:
                data = None
            if data is not None and len(data) == info.size_bytes and hashlib.sha256(data).hexdigest() == info.sha256:
                self.done[index] = info
            else:
                log.warning("%s is missing or changed since it was written: writing it again", store.uri(info.name))
        for name in names:
            if ".tar.partial-" in name and _is_shard_file(name):
                store.delete(name)  # a shard the interrupted run was writing
        log.info(
            "continuing the interrupted generation in %s: %d of %d shards already written",
            store.location,
            len(self.done),
            self.settings.num_shards,
        )

    def remaining(self) -> list[int]:
        """Indices of the shards still to write."""
        return [shard for shard in range(self.settings.num_shards) if shard not in self.done]

    def add(self, info: ShardInfo) -> None:
        """Record a completed shard."""
        index = _shard_index(info.name)
        if index is None:
            raise ValueError(f"not a shard name: {info.name}")
        self.done[index] = info
        self._save()

    def _save(self) -> None:
        shards = [dataclasses.asdict(self.done[index]) for index in sorted(self.done)]
        self.store.write_bytes(
            PROGRESS_NAME, json.dumps({"settings": self.record, "shards": shards}, indent=1).encode()
        )

    def finish(self) -> Manifest:
        """Write the manifest of the whole set (last), then drop the generation record."""
        missing = self.remaining()
        if missing:
            raise RuntimeError(f"cannot finish {self.store.location}: shards {missing} were not written")
        manifest = Manifest(
            shards=[self.done[index] for index in sorted(self.done)],
            generator=self.settings.to_dict(),
            seed=self.settings.seed,
        )
        self.store.write_manifest(manifest)
        self.store.delete(PROGRESS_NAME)
        return manifest


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ between two JSON-like values."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            name
            for key in sorted(set(old) | set(new), key=str)
            for name in _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        ]
    return [] if old == new else [prefix.rstrip(".") or "settings"]


def _shard_index(name: str) -> int | None:
    """42 from ``shard-000042.tar``; ``None`` for any other name."""
    if not (name.startswith("shard-") and name.endswith(".tar")):
        return None
    digits = name[len("shard-") : -len(".tar")]
    return int(digits) if digits.isdigit() and shard_name(int(digits)) == name else None
