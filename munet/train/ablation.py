"""The paper's central claim, measured: the same compute for four variants of the joint model.

- ``body_only``: only body losses (the clothed branch is not trained);
- ``cloth_only``: only clothed losses, on the predicted but detached body (no body supervision);
- ``guided_no_feedback``: all losses, the clothed branch built on the detached predicted body;
- ``full_mutual``: all losses with guidance and feedback (the MuNet mechanism).

Each variant trains with :func:`munet.train.distributed.run_training` for the same steps, batch
size and workers, is evaluated with :func:`munet.eval.evaluate` on the same held-out shards, and
lands in one comparison table (``ablation.md`` and ``ablation.csv``).
"""

from __future__ import annotations

import csv
from pathlib import Path

from munet.config import MuNetConfig, load_config
from munet.eval import evaluate
from munet.eval.evaluate import METRIC_KEYS
from munet.train.distributed import run_training

_BODY = ("body_vertex", "body_joint", "body_orientation", "body_reproj", "body_params")
_CLOTH = ("cloth_chamfer", "cloth_p2s", "cloth_normal", "cloth_edge", "cloth_laplacian",
          "consistency_inside", "consistency_tight")

VARIANTS: dict[str, list[str]] = {
    "body_only": [f"loss.{name}=0" for name in _CLOTH],
    "cloth_only": [f"loss.{name}=0" for name in _BODY] + ["mutual.feedback=false", "mutual.teacher_forcing=0"],
    "guided_no_feedback": ["mutual.feedback=false"],
    "full_mutual": [],
}
"""Config overrides of each variant (on top of the base configuration)."""

_MEDIAN_ORIENTATION = "median_orientation_deg"


def variant_config(base: str | None, overrides: list[str], variant: str) -> MuNetConfig:
    """The configuration of one variant: base preset/file ← user overrides ← the variant's own."""
    return load_config(base or "cpu", list(overrides) + VARIANTS[variant])


def run_ablation(
    data: str,
    heldout: str,
    out: str | Path,
    base: str | None = None,
    overrides: list[str] | None = None,
    variants: list[str] | None = None,
    max_eval_samples: int | None = None,
) -> list[dict[str, float | str]]:
    """Train and evaluate every variant; write ``out/ablation.{md,csv}``; return the rows."""
    out = Path(out).resolve()
    rows: list[dict[str, float | str]] = []
    for variant in variants or list(VARIANTS):
        config = variant_config(base, overrides or [], variant)
        result = run_training(config, data=data, out=str(out), name=variant,
                              resume=(out / variant).exists())
        if result.error is not None:
            rows.append({"variant": variant, "status": f"failed: {result.error}"})
            continue
        summary = evaluate(out / variant, heldout, out / variant / "report", max_samples=max_eval_samples)
        rows.append({"variant": variant, "status": "ok", **{k: summary[k] for k in METRIC_KEYS},
                     _MEDIAN_ORIENTATION: summary["median"]["orientation_deg"]})
    write_table(rows, out)
    return rows


def write_table(rows: list[dict[str, float | str]], out: Path) -> None:
    """``ablation.csv`` and ``ablation.md`` with one row per variant: the means of the metrics,
    and the median orientation error (its meaningful summary)."""
    columns = ["variant", "status", *METRIC_KEYS, _MEDIAN_ORIENTATION]
    with open(out / "ablation.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.3f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
