"""The evaluation report: ``metrics.json``, ``per_sample.csv``, ``metrics.md``, pictures."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from munet.markdown import table

UNITS = {
    "mpjpe_mm": "mm",
    "pa_mpjpe_mm": "mm",
    "pve_mm": "mm",
    "orientation_deg": "degrees between the torso frames; the median is the summary to quote",
    "chamfer_cm": "cm",
    "p2s_cm": "cm",
    "normal_consistency": "(1 is best)",
    "body_on_mask": "fraction of the projected body on the person, 1 is best",
}


PROTOCOL_UNITS = {
    "mpjpe_mm": "mm, after aligning the pelvises",
    "pa_mpjpe_mm": "mm, after a similarity Procrustes alignment",
    "pck150": "percent of joints within 150 mm (0-100, higher is better)",
    "auc": "percent, mean PCK over 0-150 mm (higher is better)",
}
"""Units of the benchmark protocols' metrics (:mod:`munet.metrics.protocols`)."""

ICON_UNITS = {
    "chamfer_cm": "nominal cm: ×100 in the frame where the scan is 1.8 units tall (lower is better)",
    "p2s_cm": "nominal cm, scan samples to the predicted surface (lower is better)",
    "nc": "ICON's normal-render error, mean ‖n_pred − n_gt‖² over the 4 views' pixels (0 best, max 4)",
}
"""Units of the ``icon`` protocol's metrics (:mod:`munet.metrics.icon`)."""


def metric_units(summary: dict[str, Any]) -> dict[str, str]:
    """``{metric: unit}`` of the metrics a summary holds, in its order."""
    protocol = summary.get("protocol", "own")
    units = UNITS if protocol == "own" else ICON_UNITS if protocol == "icon" else PROTOCOL_UNITS
    return {key: units.get(key, "") for key in summary.get("metrics", list(UNITS))}


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def markdown_table(summary: dict[str, Any]) -> str:
    """The summary as Markdown: what was evaluated, then a table (metric, mean, median, samples,
    unit)."""
    fit = summary.get("fit")
    fitted = (
        "" if fit is None else f" Predictions fitted to each sample's person mask ({fit['steps']} steps, munet.fit)."
    )
    protocol = summary.get("protocol", "own")
    if protocol == "own":
        lines = [
            f"Evaluated {summary['num_samples']} samples of `{summary['data']}` with the checkpoint of "
            f"step {summary['step']}; surfaces sampled with {summary['num_surface_samples']} points each.{fitted}",
            "",
            "Each metric is averaged over the samples holding its target (body metrics: a body mesh of the "
            "model's topology; clothed metrics: the clothed surface; body_on_mask: the person mask).",
            "",
        ]
    elif protocol == "icon":
        lines = [
            f"Protocol **icon** (ICON/ECON clothed-surface scoring) on {summary['num_samples']} samples of "
            f"`{summary['data']}` with the checkpoint of step {summary['step']}.{fitted}",
            "",
            f"- Samples: {summary['views']}",
            f"- Surfaces: {summary['surface_sampling']}",
            f"- Camera: {summary['camera']}",
            f"- Body: {summary['body']}",
            f"- Alignment: {summary['alignment']}",
            f"- NC: {summary['nc_definition']}",
            "",
        ]
    else:
        sources = ", ".join(f"{name} ({count})" for name, count in summary["ground_truth"].items())
        lines = [
            f"Protocol **{protocol}** on {summary['num_samples']} samples of `{summary['data']}` with the "
            f"checkpoint of step {summary['step']}.{fitted}",
            "",
            f"- Frames: {summary['protocol_frames']}",
            f"- Body: {summary['body']}; joints regressed from the predicted mesh by `{summary['regressor']}`",
            f"- Joint set: {summary['joint_set']}; ground truth from: {sources}",
            "- No clothed-surface or mask metrics (body data set).",
            "",
        ]
    counts = summary.get("count", {})
    rows = [
        [
            key,
            _number(summary[key]),
            _number(summary["median"][key]),
            str(counts.get(key, summary["num_samples"])),
            unit,
        ]
        for key, unit in metric_units(summary).items()
    ]
    return "\n".join(lines + table(["metric", "mean", "median", "samples", "unit"], rows, align="lrrrl")) + "\n"


def _overlay_grid(shown: list[tuple[Any, dict[str, np.ndarray]]]) -> np.ndarray:
    from munet.data.render import Renderer
    from munet.eval.overlay import BODY_COLOR, CLOTH_COLOR, TRUTH_COLOR, label, overlay_mesh

    rows = []
    size = shown[0][0].record.image.shape[0]
    with Renderer(size) as renderer:
        for item, pred in shown:
            record = item.record
            image, K, flat = record.image, record.camera.K, record.camera.orthographic
            columns = [
                label(image, record.key.split("/", 1)[-1]),
                label(
                    overlay_mesh(
                        renderer, image, pred["body_vertices"], pred["body_faces"], K, BODY_COLOR, orthographic=flat
                    ),
                    "body",
                ),
            ]
            if "cloth_vertices" in pred:  # the own protocol: the clothed prediction and its truth
                columns.append(
                    label(
                        overlay_mesh(
                            renderer,
                            image,
                            pred["cloth_vertices"],
                            pred["cloth_faces"],
                            K,
                            CLOTH_COLOR,
                            orthographic=flat,
                        ),
                        "clothed",
                    )
                )
                if record.cloth is None:
                    columns.append(label(image, "no truth"))
                else:
                    columns.append(
                        label(
                            overlay_mesh(
                                renderer,
                                image,
                                record.cloth.vertices,
                                record.cloth.faces,
                                K,
                                TRUTH_COLOR,
                                orthographic=flat,
                            ),
                            "truth",
                        )
                    )
            rows.append(np.concatenate(columns, axis=1))
    return np.concatenate(rows, axis=0)


def _histograms(rows: list[dict[str, Any]], units: dict[str, str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max(1, (len(units) + 1) // 2)
    fig, axes = plt.subplots(2, columns, figsize=(3.7 * columns, 6), squeeze=False)
    for ax in axes.ravel()[len(units) :]:
        ax.axis("off")
    for ax, (key, unit) in zip(axes.ravel(), units.items()):
        values = [r[key] for r in rows if np.isfinite(r[key])]
        ax.set_title(f"{key}\n({unit})", fontsize=9)
        if not values:
            ax.text(0.5, 0.5, "no sample has this target", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.hist(values, bins=min(20, max(5, len(values) // 2)), color="#4a7fd0")
        ax.axvline(float(np.mean(values)), color="k", linestyle="--", linewidth=1)
    fig.suptitle(f"Per-sample errors ({len(rows)} samples; dashed: mean)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(
    out: Path,
    summary: dict[str, Any],
    rows: list[dict[str, Any]],
    shown: list[tuple[Any, dict[str, np.ndarray]]],
) -> None:
    """Write every report file into ``out`` (created if needed)."""
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    with open(out / "per_sample.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "metrics.md").write_text(markdown_table(summary))
    _histograms(rows, metric_units(summary), out / "histograms.png")
    if shown:
        cv2.imwrite(str(out / "overlays.png"), cv2.cvtColor(_overlay_grid(shown), cv2.COLOR_RGB2BGR))
