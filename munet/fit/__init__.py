"""Test-time fitting of predicted meshes to a person mask (silhouette costs, rigid + smooth motion)."""

from munet.fit.fitter import FitReport, FitSettings, FittedMeshes, SilhouetteFitter, fit_output
from munet.fit.silhouette import MaskTargets, coverage_cost, mask_targets, outline_points, outside_cost

__all__ = [
    "FitReport",
    "FitSettings",
    "FittedMeshes",
    "MaskTargets",
    "SilhouetteFitter",
    "coverage_cost",
    "fit_output",
    "mask_targets",
    "outline_points",
    "outside_cost",
]
