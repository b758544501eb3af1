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


def markdown_table(summary: dict[str, Any]) -> str:
    """The summary as a Markdown table (metric, mean, median, unit) with the sample counts."""
    fit = summary.get("fit")
    fitted = (
        "" if fit is None else f" Predictions fitted to each sample's person mask ({fit['steps']} steps, munet.fit)."
    )
    lines = [
        f"Evaluated {summary['num_samples']} samples of `{summary['data']}` with the checkpoint of "
        f"step {summary['step']}; surfaces sampled with {summary['num_surface_samples']} points each.{fitted}",
        "",
    ]
    rows = [[key, f"{summary[key]:.3f}", f"{summary['median'][key]:.3f}", unit] for key, unit in UNITS.items()]
    return "\n".join(lines + table(["metric", "mean", "median", "unit"], rows, align="lrrl")) + "\n"


def _overlay_grid(shown: list[tuple[Any, dict[str, np.ndarray]]]) -> np.ndarray:
    from munet.data.render import Renderer
    from munet.eval.overlay import BODY_COLOR, CLOTH_COLOR, TRUTH_COLOR, label, overlay_mesh

    rows = []
    size = shown[0][0].record.image.shape[0]
    with Renderer(size) as renderer:
        for item, pred in shown:
            record = item.record
            image, K = record.image, record.camera.K
            rows.append(
                np.concatenate(
                    [
                        label(image, record.key.split("/", 1)[-1]),
                        label(
                            overlay_mesh(renderer, image, pred["body_vertices"], pred["body_faces"], K, BODY_COLOR),
                            "body",
                        ),
                        label(
                            overlay_mesh(renderer, image, pred["cloth_vertices"], pred["cloth_faces"], K, CLOTH_COLOR),
                            "clothed",
                        ),
                        label(
                            overlay_mesh(renderer, image, record.cloth.vertices, record.cloth.faces, K, TRUTH_COLOR),
                            "truth",
                        ),
                    ],
                    axis=1,
                )
            )
    return np.concatenate(rows, axis=0)


def _histograms(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = (len(UNITS) + 1) // 2
    fig, axes = plt.subplots(2, columns, figsize=(3.7 * columns, 6))
    for ax in axes.ravel()[len(UNITS) :]:
        ax.axis("off")
    for ax, (key, unit) in zip(axes.ravel(), UNITS.items()):
        values = [r[key] for r in rows]
        ax.hist(values, bins=min(20, max(5, len(values) // 2)), color="#4a7fd0")
        ax.axvline(float(np.mean(values)), color="k", linestyle="--", linewidth=1)
        ax.set_title(f"{key}\n({unit})", fontsize=9)
    fig.suptitle(f"Per-sample errors ({len(rows)} samples; dashed: mean)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(
    out: Path,
    summary: dict[str, Any],
    rows: list[dict[str, float]],
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
    _histograms(rows, out / "histograms.png")
    if shown:
        cv2.imwrite(str(out / "overlays.png"), cv2.cvtColor(_overlay_grid(shown), cv2.COLOR_RGB2BGR))
