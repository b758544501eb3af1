"""Settings of a sweep (what ``munet/tune/sweep.yaml`` holds), and the saved sweep spec.

The defaults live in the dataclasses below; ``munet/tune/sweep.yaml`` mirrors them with
comments (a test keeps the two equal) and any YAML given with ``--sweep`` overrides them key by
key, with the same checks as the model configuration (unknown keys are an error).

A :class:`SweepSpec` is everything one sweep needs — data, base configuration, settings, per-trial
overrides. It is written to ``OUT/sweep.yaml`` when the sweep starts so that ``--resume``
continues with exactly the same settings. The Tune experiment lives in ``OUT/tune``, one folder
per trial named ``trial_NNN`` by creation order (:func:`trial_name`).

``OUT`` is a local folder or a URI (``file://``, ``s3://``, ``gs://``; :func:`sweep_location`): it
is Ray Tune's storage, and everything of the sweep is read and written through it (pyarrow
filesystems, :class:`munet.data.shards.ShardStore`), never as a local folder of the machine that
runs a trial.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from munet.checkpoint.find import run_location, storage_root
from munet.config import (
    ConfigError,
    MuNetConfig,
    build_dataclass,
    config_from_dict,
    config_to_dict,
)
from munet.metrics import BODY_METRICS, CLOTH_METRICS
from munet.tune.space import SearchSpace

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

DEFAULT_SETTINGS = Path(__file__).resolve().parent / "sweep.yaml"
SPEC_NAME = "sweep.yaml"


@dataclass(frozen=True)
class ObjectiveSettings:
    """What a trial is judged by: one held-out body error and one clothed error (lower is better).

    The two are optimised jointly (Optuna multi-objective, a Pareto front) unless
    ``multi_objective`` is false. Wherever one number is needed — the best configuration, the
    single-objective search, ASHA — they are combined into the score
    ``body / body_scale + cloth / cloth_scale``: the scales are the errors at which the two
    tasks count equally.
    """

    body_metric: str = "pa_mpjpe_mm"
    cloth_metric: str = "chamfer_cm"
    body_scale: float = 50.0
    """Millimetres of body error worth one unit of score."""
    cloth_scale: float = 1.0
    """Centimetres of clothed error worth one unit of score."""
    multi_objective: bool = True

    def __post_init__(self) -> None:
        if self.body_metric not in BODY_METRICS:
            raise ConfigError(f"objective.body_metric must be one of {list(BODY_METRICS)}, got {self.body_metric!r}")
        if self.cloth_metric not in CLOTH_METRICS:
            raise ConfigError(f"objective.cloth_metric must be one of {list(CLOTH_METRICS)}, got {self.cloth_metric!r}")
        if self.body_scale <= 0 or self.cloth_scale <= 0:
            raise ConfigError("objective.body_scale and objective.cloth_scale must be > 0")

    def score(self, body: float, cloth: float) -> float:
        """The scalar combination of a body error (mm) and a clothed error (cm)."""
        return body / self.body_scale + cloth / self.cloth_scale


@dataclass(frozen=True)
class AshaSettings:
    """Early stopping of unpromising trials (``ASHAScheduler`` over training steps).

    Trials are ranked at each rung by the *training-set* score: ``metric/mpjpe_mm`` for the body and
    the unweighted Chamfer term ``loss/cloth_chamfer`` (in cm) for the clothes, combined with the
    scales of :class:`ObjectiveSettings`; held-out errors exist only once a trial has finished.
    The training-set Chamfer is measured under the trial's own teacher forcing (clothes built on
    the ground-truth body part of the time), which flatters slow teacher-forcing decay: keep the
    grace period long enough for the forcing of most trials to have decayed.
    """

    grace_period: float = 0.25
    """Fraction of ``train.steps`` every trial trains before it may be stopped (1: never stop)."""
    reduction_factor: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.grace_period <= 1:
            raise ConfigError(f"asha.grace_period is a fraction of train.steps in (0, 1], got {self.grace_period}")
        if self.reduction_factor <= 1:
            raise ConfigError(f"asha.reduction_factor must be > 1, got {self.reduction_factor}")


@dataclass(frozen=True)
class EvalSettings:
    """How a finished trial is evaluated on the held-out shards (:func:`munet.eval.evaluate`)."""

    samples: int = 16
    """Held-out samples per trial (and the size of the generated held-out set)."""
    surface_samples: int = 5000
    """Points sampled per surface for Chamfer / P2S."""
    pictures: int = 4
    """Overlay pictures in each trial's report."""

    def __post_init__(self) -> None:
        if self.samples < 1 or self.surface_samples < 1 or self.pictures < 0:
            raise ConfigError("eval.samples and eval.surface_samples must be >= 1, eval.pictures >= 0")


@dataclass(frozen=True)
class SweepSettings:
    """Everything about a sweep that is not the model configuration."""

    trials: int = 16
    max_concurrent: int | None = None
    """Trials running at once; default (``None``): as many as the cluster's resources hold, plus
    one waiting for room, recomputed whenever a trial is to start, so that the sweep grows with
    an autoscaling cluster (:mod:`munet.tune.concurrency`)."""
    max_failures: int = 1
    """Restarts of a trial whose driver is lost (its node gone, e.g. a reclaimed spot node); the
    restarted trial continues its training run from the last checkpoint. An error the trial raises
    itself (training that failed after ``train.max_failures`` restarts of its workers, bad data or
    NaN losses, a failed evaluation) ends it at once, without a restart."""
    trial_cpus: float = 1.0
    """CPUs each trial's driver reserves (it starts the trainer and evaluates the checkpoint);
    the training workers reserve ``train.workers × train.cpus_per_worker`` on top."""
    seed: int = 0
    """Seed of the Optuna sampler."""
    objective: ObjectiveSettings = ObjectiveSettings()
    asha: AshaSettings = AshaSettings()
    eval: EvalSettings = EvalSettings()
    space: SearchSpace = SearchSpace()

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"trials must be >= 1, got {self.trials}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ConfigError(f"max_concurrent must be >= 1, got {self.max_concurrent}")
        if self.max_failures < 0:
            raise ConfigError(f"max_failures must be >= 0, got {self.max_failures}")
        if self.trial_cpus < 0:
            raise ConfigError(f"trial_cpus must be >= 0, got {self.trial_cpus}")
        if not self.space.ranges():
            raise ConfigError("the search space is empty: give at least one parameter a range")


def _parse_mapping(text: str, source: str) -> dict[str, Any]:
    """The YAML mapping in ``text`` (read from ``source``, named in errors)."""
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    return loaded or {}


def load_sweep_settings(path: str | Path | None = None) -> SweepSettings:
    """Sweep settings from a YAML file (default: the shipped ``munet/tune/sweep.yaml``);
    keys not given keep the defaults of :class:`SweepSettings`."""
    path = path or DEFAULT_SETTINGS
    return build_dataclass(SweepSettings, _parse_mapping(Path(path).read_text(), str(path)), str(path))


@dataclass(frozen=True)
class SweepSpec:
    """One sweep, complete: what :func:`munet.tune.sweep.run_sweep` runs and ``--resume`` reuses.

    Attributes:
        out: the sweep folder, an absolute local path or a URI (:func:`sweep_location`): Tune's
            storage, the Tune experiment, tables, plot, best config.
        data: training shards (folder or URI).
        val_data: held-out shards every trial is evaluated on.
        base: the configuration every trial starts from (``train.steps`` included).
        settings: the sweep settings.
        trial_overrides: extra ``key=value`` overrides for single trials, by trial number (1 is
            the first trial created): fault injection, or reproducing one trial with a change.
    """

    out: str
    data: str
    val_data: str
    base: MuNetConfig
    settings: SweepSettings = SweepSettings()
    trial_overrides: dict[int, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested data (YAML-ready); :meth:`from_dict` reads it back to an equal spec."""
        return {
            "out": self.out,
            "data": self.data,
            "val_data": self.val_data,
            "base": config_to_dict(self.base),
            "settings": dataclasses.asdict(self.settings),
            "trial_overrides": {int(k): list(v) for k, v in self.trial_overrides.items()},
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SweepSpec:
        """The spec written by :meth:`to_dict`."""
        return cls(
            out=values["out"],
            data=values["data"],
            val_data=values["val_data"],
            base=config_from_dict(values["base"]),
            settings=build_dataclass(SweepSettings, values["settings"], "settings"),
            trial_overrides={int(k): list(v) for k, v in (values.get("trial_overrides") or {}).items()},
        )

    def save(self) -> str:
        """Write the spec to ``out/sweep.yaml``; returns its location."""
        from munet.data.shards import ShardStore

        folder = ShardStore(self.out)
        folder.write_bytes(SPEC_NAME, yaml.safe_dump(self.to_dict(), sort_keys=False).encode())
        return folder.uri(SPEC_NAME)

    @classmethod
    def load(cls, out: str) -> SweepSpec:
        """The spec a sweep in the folder or URI ``out`` was started with.

        Raises:
            FileNotFoundError: ``out`` holds no sweep.
        """
        from munet.data.shards import ShardStore

        folder = ShardStore(out)
        if not folder.exists(SPEC_NAME):
            raise FileNotFoundError(f"{out} holds no sweep ({SPEC_NAME} is missing): nothing to resume")
        return cls.from_dict(_parse_mapping(folder.read_bytes(SPEC_NAME).decode(), folder.uri(SPEC_NAME)))


EXPERIMENT = "tune"
"""Name of the Tune experiment folder inside the sweep folder."""

_TRIAL_NAME = re.compile(r"trial_(\d+)$")


def sweep_location(out: str) -> str:
    """``--out`` as the sweep's storage: a local path made absolute (trials run in other working
    folders), or a URI whose filesystem pyarrow knows (``file://``, ``s3://``, ``gs://``, …).

    Raises:
        ConfigError: a URI of a scheme pyarrow does not know, or a malformed one.
    """
    location = storage_root(out)
    if "://" in location:
        import pyarrow.fs as pafs

        try:
            pafs.FileSystem.from_uri(location)
        except ValueError as exc:  # pyarrow.ArrowInvalid: unknown scheme, missing bucket, ...
            raise ConfigError(
                f"--out {out} is not a usable sweep location ({exc}): give a local folder or a URI such "
                "as file:///shared/sweeps/s1, s3://bucket/sweeps/s1 or gs://bucket/sweeps/s1"
            ) from exc
    return location


def experiment_location(out: str) -> str:
    """The Tune experiment folder (or URI) of the sweep in ``out``."""
    return run_location(out, EXPERIMENT)


def trial_location(out: str, name: str) -> str:
    """The folder (or URI) of trial ``name`` of the sweep in ``out``."""
    return run_location(experiment_location(out), name)


def trial_name(trial: Trial) -> str:
    """``trial_NNN``: the trial's creation number (1 for the first), from its Tune experiment tag
    (``"<number>_<params>"``). Used as the trial's name and folder name."""
    number = trial.experiment_tag.split("_", 1)[0]
    if not number.isdigit():
        raise ValueError(f"unexpected Tune experiment tag {trial.experiment_tag!r}: no trial number")
    return f"trial_{int(number):03d}"


def trial_number(name: str) -> int:
    """The creation number in a name made by :func:`trial_name`."""
    match = _TRIAL_NAME.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a sweep trial name (trial_NNN)")
    return int(match.group(1))
