"""Hyperparameter sweeps of the mutualistic mechanism with Ray Tune + Optuna (ASHA early stopping,
one Ray Train ``TorchTrainer`` per trial). Commands: ``munet sweep`` and ``munet ablation``."""

from munet.tune.results import SweepResults, TrialRow, collect_results, pareto_mask, write_results
from munet.tune.settings import SweepSettings, SweepSpec, load_sweep_settings
from munet.tune.space import Range, SearchSpace, param_overrides, trial_config
from munet.tune.sweep import run_sweep

__all__ = [
    "Range",
    "SearchSpace",
    "SweepResults",
    "SweepSettings",
    "SweepSpec",
    "TrialRow",
    "collect_results",
    "load_sweep_settings",
    "pareto_mask",
    "param_overrides",
    "run_sweep",
    "trial_config",
    "write_results",
]
