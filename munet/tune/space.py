"""The search space of the mutualistic-mechanism sweep, and how a sampled point becomes a config.

Each parameter is a field of :class:`SearchSpace` holding a :class:`Range` (``None`` leaves the
parameter out of the sweep). A sampled point (``{name: value}``) is turned into ``key=value``
overrides of :class:`~munet.config.MuNetConfig` by :func:`param_overrides` and applied on top of
the base configuration by :func:`trial_config`:

========================  ================================  ==========================================
parameter                 configuration                     meaning
========================  ================================  ==========================================
``feedback_weight``       ``mutual.feedback_weight.end``    final scale of the clothed-loss gradient
                                                            that reaches the body branch (feedback)
``feedback_warmup``       ``mutual.feedback_weight.warmup`` steps of zero feedback before its ramp, as
                                                            a fraction of ``train.steps``
``teacher_forcing_ramp``  ``mutual.teacher_forcing.ramp``   steps over which teacher-forced guidance
                                                            decays to its end value, as a fraction of
                                                            ``train.steps``
``consistency_weight``    ``loss.consistency_inside``       constant weight of "the body lies inside
                                                            the clothed surface"
``cloth_weight``          ``loss.cloth_chamfer``,           constant weight of the clothed Chamfer
                          ``loss.cloth_p2s``                term; P2S gets ``cloth_weight`` times its
                                                            base ratio to Chamfer (0.5 by default)
``lr``                    ``train.lr``                      peak learning rate (off by default)
========================  ================================  ==========================================

Warm-up and ramp are fractions so that one search space fits a 3-step test and a 20k-step run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import yaml

from munet.config import ConfigError, MuNetConfig, apply_overrides


@dataclass(frozen=True)
class Range:
    """A closed interval of one parameter; sampled uniformly, or log-uniformly when ``log``."""

    low: float = 0.0
    high: float = 1.0
    log: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low <= self.high):
            raise ConfigError(f"a range needs finite low <= high, got [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ConfigError(f"a log range needs low > 0, got [{self.low}, {self.high}]")

    def domain(self) -> Any:
        """The Ray Tune search domain of this range (Optuna samples it through ``OptunaSearch``)."""
        from ray import tune

        return tune.loguniform(self.low, self.high) if self.log else tune.uniform(self.low, self.high)

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class SearchSpace:
    """The swept parameters (see the module docstring); ``None`` keeps the base configuration's
    value. These are the defaults; ``munet/tune/sweep.yaml`` mirrors them under ``space:``."""

    feedback_weight: Range | None = Range(0.1, 3.0, log=True)
    feedback_warmup: Range | None = Range(0.0, 0.5)
    teacher_forcing_ramp: Range | None = Range(0.0, 1.0)
    consistency_weight: Range | None = Range(0.05, 2.0, log=True)
    cloth_weight: Range | None = Range(0.25, 4.0, log=True)
    lr: Range | None = None

    def ranges(self) -> dict[str, Range]:
        """The swept parameters and their ranges (disabled ones left out)."""
        ranges = {f.name: getattr(self, f.name) for f in fields(self)}
        return {name: value for name, value in ranges.items() if value is not None}

    def tune_space(self) -> dict[str, Any]:
        """The Ray Tune ``param_space``: one search domain per swept parameter."""
        return {name: rng.domain() for name, rng in self.ranges().items()}


def _set(key: str, value: float | int) -> str:
    """A ``key=value`` override whose value reads back exactly (YAML needs ``1.0e-05``, not
    ``1e-05``, to see a float)."""
    return f"{key}={yaml.safe_dump(value).splitlines()[0]}"


def _steps_fraction(config: MuNetConfig, fraction: float) -> int:
    return round(fraction * config.train.steps)


def _cloth_weight(config: MuNetConfig, value: float) -> list[str]:
    chamfer = config.loss.cloth_chamfer.start
    if chamfer == 0:
        raise ConfigError(
            "cloth_weight keeps P2S at its base ratio to Chamfer, but the base config has "
            "loss.cloth_chamfer = 0; give the base a non-zero Chamfer weight or drop cloth_weight"
        )
    return [_set("loss.cloth_chamfer", value), _set("loss.cloth_p2s", value * config.loss.cloth_p2s.start / chamfer)]


_OVERRIDES: dict[str, Callable[[MuNetConfig, float], list[str]]] = {
    "feedback_weight": lambda c, v: [_set("mutual.feedback_weight.end", v)],
    "feedback_warmup": lambda c, v: [_set("mutual.feedback_weight.warmup", _steps_fraction(c, v))],
    "teacher_forcing_ramp": lambda c, v: [_set("mutual.teacher_forcing.ramp", _steps_fraction(c, v))],
    "consistency_weight": lambda c, v: [_set("loss.consistency_inside", v)],
    "cloth_weight": _cloth_weight,
    "lr": lambda c, v: [_set("train.lr", v)],
}
"""How each parameter of :class:`SearchSpace` writes into the configuration."""


def param_overrides(params: Mapping[str, float], base: MuNetConfig) -> list[str]:
    """The ``key=value`` overrides that set the sampled ``params`` on top of ``base``.

    Raises:
        ConfigError: a parameter that :class:`SearchSpace` does not define.
    """
    unknown = sorted(set(params) - set(_OVERRIDES))
    if unknown:
        raise ConfigError(f"unknown sweep parameter(s) {unknown}; known: {sorted(_OVERRIDES)}")
    return [text for name, value in params.items() for text in _OVERRIDES[name](base, float(value))]


def trial_config(
    base: MuNetConfig, params: Mapping[str, float], extra_overrides: list[str] | None = None
) -> MuNetConfig:
    """The configuration one trial trains with: ``base`` ← sampled ``params`` ← ``extra_overrides``
    (``key=value``, e.g. a fault injection for this trial only)."""
    return apply_overrides(base, param_overrides(params, base) + list(extra_overrides or []))
