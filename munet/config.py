"""Typed configuration for every part of MuNet: the one place where defaults live.

A configuration is a tree of dataclasses rooted at :class:`MuNetConfig`. It is loaded from YAML
with :func:`load_config` (unknown keys are an error, so typos never pass silently) and written back
with :func:`save_config`, so that a run directory always holds the exact configuration it used.

Three presets ship in ``munet/configs``: ``small.yaml`` (MobileNetV3-small, 1 M parameters),
``cpu.yaml`` (ResNet-18, 128 px, runs on a laptop or CI)
and ``paper.yaml`` (ResNet-50, 224 px, the size of the published model).
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

PRESET_DIR = Path(__file__).resolve().parent / "configs"

T = TypeVar("T")


@dataclass
class BodyConfig:
    """Which parametric body model produces the body mesh."""

    backend: str = "anny"
    """``anny`` (default, ships its data) or ``smplx`` (needs licensed model files)."""
    topology: str = "anny-noeyes-notongue"
    """Anny mesh topology: must be watertight and single-component."""
    cache_dir: str | None = None
    """Anny's model cache (``ANNY_CACHE_DIR``); default ``~/.cache/anny``."""
    model_dir: str | None = None
    """For ``smplx``: the folder that holds ``SMPL_NEUTRAL.pkl`` / ``SMPLX_NEUTRAL.npz`` etc."""
    model_type: str = "smpl"
    """For ``smplx``: ``smpl``, ``smplh`` or ``smplx``."""
    gender: str = "neutral"
    num_betas: int = 10


@dataclass
class GraphConfig:
    """The mesh-graph hierarchy the GCNs run on."""

    coarse_topology: str = "notoes_collapse10pc"
    """Anny topology used as the coarse template graph (about 1.2k vertices); ``fine``: the body
    mesh itself (required with the SMPL body)."""
    cloth_subdivisions: int = 1
    """Loop-free midpoint subdivisions of the coarse graph for the clothed mesh."""
    cache_dir: str | None = None
    """Where the hierarchy matrices are cached; default ``<body cache>/munet_graph``."""


@dataclass
class ModelConfig:
    """Network sizes."""

    encoder: str = "resnet18"
    """torchvision trunk: ``resnet18``, ``resnet34``, ``resnet50``, ``mobilenet_v3_small`` or
    ``mobilenet_v3_large`` (see :data:`munet.model.encoder.ENCODERS`)."""
    encoder_weights: str | None = None
    """Local file with encoder weights; random init when empty (never downloaded)."""
    encoder_norm: str = "auto"
    """Encoder normalisation: ``group`` (from scratch), ``frozen_batch`` (pretrained weights),
    ``batch`` (large per-device batches only), ``auto`` (``frozen_batch`` with encoder weights,
    else ``group``); see :mod:`munet.model.encoder`."""
    image_size: int = 128
    """Side of the square crops the network is trained on, pixels. The network takes any side (it
    reads the size off its input) and is fed ``data.image_size`` crops by the decoder and by
    prediction, so this setting records that size: in checkpoints, and among the settings a resumed
    run must keep. Configurations read from YAML or overrides must give both the same value
    (:func:`check_config`); checkpoints load with what they stored."""
    body_channels: int = 64
    body_blocks: int = 3
    body_iterations: int = 2
    """Refinements of the body with pixel-aligned features sampled where it projects."""
    cloth_channels: int = 64
    cloth_blocks: int = 3
    regress_params: bool = False
    """Also regress body-model parameters from the predicted vertices."""
    keypoint_heatmaps: bool = False
    """An auxiliary head predicting 2D joint heatmaps from the feature maps the body GCN samples
    (trained by ``loss.body_heatmap``; :mod:`munet.model.keypoints`)."""
    skeleton_init: bool = False
    """Start the body GCN from the template posed by 3D joints lifted from the keypoint head's 2D
    joints (:mod:`munet.model.skeleton`; needs ``keypoint_heatmaps``; trained by ``loss.body_lifted``)."""
    max_offset: float = 0.25
    """Largest clothed displacement from the body, metres (tanh-bounded)."""


@dataclass
class Schedule:
    """A scalar that changes with the training step.

    ``constant``: ``start`` always. ``linear``/``cosine``: ``start`` until ``warmup`` steps, then
    ramps to ``end`` over ``ramp`` steps and stays there. ``step``: ``start`` before ``warmup``,
    ``end`` after.
    """

    start: float = 1.0
    end: float | None = None
    kind: str = "constant"
    warmup: int = 0
    ramp: int = 0


@dataclass
class MutualConfig:
    """The mutualistic mechanism: guidance (body → clothed) and feedback (clothed → body)."""

    guidance: bool = True
    """Build the clothed branch on the predicted body (``False``: on the mean template)."""
    teacher_forcing: Schedule = field(
        default_factory=lambda: Schedule(start=0.5, end=0.0, kind="linear", warmup=0, ramp=1000)
    )
    """Probability of building the clothed branch on the ground-truth body instead (the clothed
    branch learns on correct bodies while the predicted ones are still poor)."""
    feedback: bool = True
    """Let clothed and consistency losses send gradient into the body branch."""
    feedback_weight: Schedule = field(
        default_factory=lambda: Schedule(start=0.0, end=0.5, kind="linear", warmup=1000, ramp=1000)
    )
    """Scale of the clothed-loss gradient that reaches the body branch. Off while the body
    branch learns pose and orientation (a clothed loss on a body that is still wrong would drag
    it), then ramped to half the weight of the body's own terms."""


@dataclass
class LossConfig:
    """Weights of every loss term; each may be scheduled."""

    body_vertex: Schedule = field(default_factory=lambda: Schedule(1.0))
    """Camera-frame vertices (pelvis-aligned). This term trains the global orientation only:
    the predicted articulated shape is held fixed in it (:func:`munet.losses.body.turned_only`),
    so an orientation that is still wrong never bends the shape to make up for it (measured with
    the shape free: held-out PA-MPJPE worse than the mean pose after 300 steps)."""
    body_canonical: Schedule = field(default_factory=lambda: Schedule(1.0))
    """Vertices in the body's own frame (predicted and true bodies each turned back by their
    orientation): supervises the articulation apart from the orientation."""
    body_joint: Schedule = field(default_factory=lambda: Schedule(1.0))
    """Camera-frame COCO-17 joints (pelvis-aligned); like ``body_vertex``, trains the orientation
    only."""
    body_orientation: Schedule = field(default_factory=lambda: Schedule(1.0))
    """The predicted global orientation against the rotation aligning the template's skeleton
    with the ground truth."""
    body_reproj: Schedule = field(default_factory=lambda: Schedule(0.1))
    body_params: Schedule = field(default_factory=lambda: Schedule(0.0))
    body_heatmap: Schedule = field(default_factory=lambda: Schedule(1.0))
    """2D joint heatmaps of the keypoint head (``model.keypoint_heatmaps``), a KL divergence over
    feature-map cells: dense 2D supervision of the encoder."""
    body_lifted: Schedule = field(default_factory=lambda: Schedule(1.0))
    """Root-relative 3D joints of the skeleton lifter (``model.skeleton_init``), L1 in metres."""
    cloth_chamfer: Schedule = field(default_factory=lambda: Schedule(1.0))
    cloth_p2s: Schedule = field(default_factory=lambda: Schedule(0.5))
    cloth_normal: Schedule = field(default_factory=lambda: Schedule(0.05))
    cloth_edge: Schedule = field(default_factory=lambda: Schedule(0.1))
    cloth_laplacian: Schedule = field(default_factory=lambda: Schedule(0.5))
    consistency_inside: Schedule = field(default_factory=lambda: Schedule(0.5))
    consistency_tight: Schedule = field(default_factory=lambda: Schedule(0.05))


@dataclass
class AugmentConfig:
    """Random training augmentation (applied only when ``data.augment`` is on; evaluation never
    augments). Colour jitter runs in the decoder (:mod:`munet.data.decode`); the geometric
    augmentation runs on the batch in the training step (:mod:`munet.train.augment`)."""

    flip: float = 0.5
    """Probability of a horizontal flip (image mirrored, left and right swapped)."""
    scale: float = 0.15
    """Crop zoom factor drawn log-uniformly in ``[1 / (1 + scale), 1 + scale]``; 0: no zoom."""
    shift: float = 0.05
    """Crop shift per axis drawn uniformly in ``[-shift, shift]``, a fraction of the crop side."""
    colour: float = 0.25
    """Brightness, contrast and saturation factors drawn uniformly in ``[1 - colour, 1 + colour]``."""


@dataclass
class DataSource:
    """One source of a training mixture (``data.sources``)."""

    path: str = ""
    """Shard folder or object-store URI."""
    weight: float = 1.0
    """Relative sampling weight: the source's share of the samples is ``weight / sum(weights)``."""


@dataclass
class DataConfig:
    """Where samples come from and how they are shaped for training."""

    path: str | None = None
    """Shard folder or object-store URI (``s3://…``, ``gs://…``); empty: generate synthetic data."""
    sources: list[DataSource] = field(default_factory=list)
    """A training mixture instead of one folder: shard folders or URIs with sampling weights (e.g.
    synthetic scans + 3DPW + Human3.6M). Each pass draws ``weight / sum(weights)`` of its samples
    from each source, cycling through a source's shards as often as its share needs. Samples hold
    the targets their data set has (partial supervision); each batch's ``source`` entry and the
    logged ``data/source<i>`` counts say where samples came from. Empty: the one folder given."""
    image_size: int = 128
    """Side S, pixels, that the decoder resizes every sample (image, mask, ``K``, 2D joints) to and
    that prediction crops to: the network's input size. ``model.image_size`` must say the same."""
    cloth_points: int = 2048
    """Fixed number of clothed-surface points (with normals) per sample."""
    synthetic_samples: int = 64
    samples_per_shard: int = 256
    """Samples per tar shard written by the generator. A shard is the unit of reading and
    decoding (one Ray task each), so a few hundred samples (tens of MB) keep storage requests and
    task overheads small; a data set needs at least as many shards as decode tasks that should run
    at once."""
    decode_cpus: float = 1.0
    """Logical CPUs each read-and-decode task of the training stream reserves. Ray Data runs as many
    such tasks as the CPUs that the training workers leave free allow, so this also says how many
    CPUs of a node are available to decoding (e.g. on a node with 8 GPUs and 96 CPUs, 8 workers ×
    ``train.cpus_per_worker`` are the training's; the rest decode)."""
    seed: int = 0
    augment: bool = True
    """Augment training samples (the master switch of ``augmentation``)."""
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    shuffle_buffer: int = 256
    """Samples in each training worker's local shuffle buffer; with a positive value the shard files
    are also read in a new random order every epoch. The views of one subject are stored next to
    each other, so without shuffling a batch holds few people. 0: shard order."""
    on_bad_sample: str = "error"
    """What a reader does with a bad sample (missing or unreadable member, non-finite array) or a
    bad shard (missing, truncated, checksum differs from the manifest): ``error`` stops with a
    ``BadSampleError`` naming the shard and the key (it would fail again on every read); ``skip``
    leaves it out, logs its key and counts it (``munet.data.ray_dataset.skipped_samples``)."""


@dataclass
class TrainConfig:
    """Optimisation and distribution."""

    steps: int = 200
    """Optimisation steps."""
    batch_size: int = 8
    """Samples per worker per forward pass."""
    global_batch_size: int = 0
    """Samples per optimisation step over all workers. 0: ``batch_size`` × workers, so that a
    change of ``workers`` changes the optimisation (then scale ``lr`` with the global batch
    yourself; linearly is the usual rule). A positive value fixes the optimisation whatever the
    worker count: every worker accumulates gradients over ``global_batch_size / (batch_size ×
    workers)`` batches per step, which must be a whole number (the run is refused otherwise)."""
    precision: str = "auto"
    """Forward-pass precision: ``auto`` (``bf16`` on GPUs, ``fp32`` on the CPU), ``fp32``, ``bf16``
    or ``fp16`` (GPU only, with loss scaling); weights, optimiser and losses stay float32
    (:mod:`munet.train.precision`)."""
    lr: float = 3e-4
    lr_warmup: int = 20
    """Linear learning-rate warm-up steps (then cosine decay to 10%)."""
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    checkpoint_every: int = 50
    checkpoint_upload: str = "sync"
    """How rank 0's checkpoint reaches the run's storage: ``sync`` (the step waits for the upload)
    or ``async`` (Ray uploads it in the background while training goes on, and deletes the local
    copy after; worth it when the storage is object storage and checkpoints are large). A worker
    lost during an upload restarts from the previous checkpoint."""
    log_every: int = 10
    max_failures: int = 1
    """Worker-group restarts (from the last checkpoint) before the run fails. Failures that would
    repeat (bad data, the ``max_bad_steps`` limit) end the run at once, without a restart."""
    keep_checkpoints: int = 3
    inject_failure_at_step: int | None = None
    """Fault injection: raise once in every worker after this step's checkpoint (tests recovery)."""
    max_bad_steps: int = 5
    """Consecutive non-finite losses tolerated (step skipped) before the run stops; the count is
    checkpointed, so it carries over restarts and ``--resume``."""
    seed: int = 0


@dataclass
class MuNetConfig:
    """The whole configuration of a run."""

    body: BodyConfig = field(default_factory=BodyConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    mutual: MutualConfig = field(default_factory=MutualConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


class ConfigError(ValueError):
    """A configuration file or override that does not fit the schema."""


def _build(cls: type, values: Any, where: str, base: Any = None) -> Any:
    """Build dataclass ``cls`` from a mapping, recursively, rejecting unknown keys.

    Keys not given keep their value in ``base`` (default: ``cls()``), so a partial section only
    changes what it names. A bare number where a :class:`Schedule` is expected is a constant.
    """
    base = cls() if base is None else base
    if values is None:
        return base
    if isinstance(values, (int, float)) and not isinstance(values, bool) and cls is Schedule:
        return Schedule(start=float(values))
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} for {cls.__name__}; valid keys: {sorted(names)}")
    kwargs = {
        name: _coerce(hints[name], value, f"{where}.{name}", getattr(base, name)) for name, value in values.items()
    }
    return dataclasses.replace(base, **kwargs)


def _coerce(hint: Any, value: Any, where: str, current: Any = None) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where, current)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(args[0], item, f"{where}[{index}]") for index, item in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where, current)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float:
        # YAML 1.1 reads "1e-3" (no dot) as a string: accept any number Python can parse.
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if hint in (int, str, bool) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    if hint is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected int, got {value!r}")
    return value


def config_from_dict(values: dict[str, Any] | None) -> MuNetConfig:
    """Build a :class:`MuNetConfig` from a nested mapping (missing keys keep their defaults)."""
    return _build(MuNetConfig, values or {}, "config")


def build_dataclass(cls: type[T], values: dict[str, Any] | None, where: str) -> T:
    """Build any settings dataclass ``cls`` (every field with a default) from a nested mapping,
    with the checks of :func:`config_from_dict`: unknown keys and wrong types are a
    :class:`ConfigError` naming ``where`` and the key; missing keys keep their defaults."""
    return _build(cls, values or {}, where)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict[str, Any]:
    """Turn ``"train.lr=1e-3"`` into ``{"train": {"lr": 0.001}}`` (the value is read as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    dotted, raw = text.split("=", 1)
    value = yaml.safe_load(raw)
    out: dict[str, Any] = {}
    node = out
    keys = dotted.strip().split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return out


def check_config(config: MuNetConfig) -> MuNetConfig:
    """``config`` itself, once the settings that must agree across sections do.

    Raises:
        ConfigError: ``model.image_size`` differs from ``data.image_size`` (the network is fed
            ``data.image_size`` crops; ``model.image_size`` records that size); the message says to
            set ``model.image_size`` to ``data.image_size``.
    """
    model, data = config.model.image_size, config.data.image_size
    if model != data:
        raise ConfigError(
            f"model.image_size ({model}) differs from data.image_size ({data}): the network is fed "
            f"data.image_size crops and model.image_size records that size in checkpoints. Set "
            f"model.image_size={data} (--set model.image_size={data}), or set both to the size you want."
        )
    return config


def apply_overrides(config: MuNetConfig, overrides: list[str]) -> MuNetConfig:
    """``config`` with ``key=value`` overrides (as in :func:`load_config`) applied on top; every
    key not named keeps its value in ``config``. The result is checked (:func:`check_config`)."""
    values: dict[str, Any] = {}
    for text in overrides:
        values = _merge(values, parse_override(text))
    return check_config(_build(MuNetConfig, values, "override", config))


def resolve_config_path(path: str | Path) -> Path:
    """A YAML path as given, or the name of a shipped preset (``small``, ``cpu``, ``paper``)."""
    candidate = Path(path)
    if candidate.exists():
        return candidate
    preset = PRESET_DIR / f"{path}.yaml"
    if preset.exists():
        return preset
    presets = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
    raise ConfigError(f"config file {str(path)!r} not found; give a YAML path or a preset {presets}")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> MuNetConfig:
    """Load a configuration: defaults ← YAML file (path or preset name) ← ``key=value`` overrides.

    Raises:
        ConfigError: an unknown key, a value of the wrong type, a file that is missing or not a
            mapping of sections, or settings that disagree (:func:`check_config`).
    """
    values: dict[str, Any] = {}
    if path is not None:
        resolved = resolve_config_path(path)
        try:
            loaded = yaml.safe_load(resolved.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{resolved}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{resolved}: the top level must be a mapping of sections")
        values = loaded or {}
    for text in overrides or []:
        values = _merge(values, parse_override(text))
    return check_config(config_from_dict(values))


def config_to_dict(config: MuNetConfig) -> dict[str, Any]:
    """The configuration as plain nested dicts (YAML/JSON-ready)."""
    return dataclasses.asdict(config)


def save_config(config: MuNetConfig, path: str | Path) -> None:
    """Write ``config`` as YAML that :func:`load_config` reads back to an equal object."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
