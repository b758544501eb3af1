"""The paper's central claim, measured: the same compute for four variants of the joint model,
each trained with several seeds so that a difference can be set against seed noise.

- ``body_only``: only body losses (the clothed branch is not trained);
- ``cloth_only``: only clothed losses, on the predicted but detached body (no body supervision);
- ``guided_no_feedback``: all losses, the clothed branch built on the detached predicted body;
- ``full_mutual``: all losses with guidance and feedback (the MuNet mechanism).

Each variant trains once per seed with :func:`munet.train.distributed.run_training` for the same
steps, batch size and workers, in the run folder ``out/<variant>/seed_<s>`` (an existing one is
resumed). The seed sets ``train.seed`` and ``data.seed``, so initialisation, teacher-forcing and
augmentation draws and the shard order all change. Every run is evaluated with
:func:`munet.eval.evaluate` on the same held-out shards (with the same evaluation seed).

The results land in ``out/ablation.csv`` (one row per run, failed runs with their status) and
``out/ablation.md``: per variant, mean ± sample standard deviation over the seeds whose run
finished, then each variant's paired per-seed difference to ``full_mutual`` on the main metrics.
Both files are rewritten after every run, so an interrupted ablation leaves a partial table.
"""

from __future__ import annotations

import csv
import logging
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from munet.config import MuNetConfig, load_config
from munet.eval import evaluate
from munet.losses import TERMS
from munet.markdown import escape_cell, table
from munet.metrics import METRIC_KEYS
from munet.train.distributed import FatalTrainingError, run_training

log = logging.getLogger(__name__)

_BODY = tuple(name for name in TERMS if name.startswith("body_"))
_CLOTH = tuple(name for name in TERMS if not name.startswith("body_"))
"""The loss terms of each branch (clothed and consistency terms count as clothed)."""

VARIANTS: dict[str, list[str]] = {
    "body_only": [f"loss.{name}=0" for name in _CLOTH],
    "cloth_only": [f"loss.{name}=0" for name in _BODY] + ["mutual.feedback=false", "mutual.teacher_forcing=0"],
    "guided_no_feedback": ["mutual.feedback=false"],
    "full_mutual": [],
}
"""Config overrides of each variant (on top of the base configuration)."""

DEFAULT_SEEDS = (0, 1)
REFERENCE = "full_mutual"
"""The variant the others are compared with."""
MAIN_METRICS = ("pa_mpjpe_mm", "mpjpe_mm", "chamfer_cm")
"""The metrics of the difference table."""

_MEDIAN_ORIENTATION = "median_orientation_deg"
_STATISTICS = (*METRIC_KEYS, _MEDIAN_ORIENTATION)
_CSV_COLUMNS = ("variant", "seed", "status", *_STATISTICS)

AblationRow = dict[str, float | int | str]
"""One run: ``variant``, ``seed``, ``status`` (``ok`` or ``failed: …``) and, when ``ok``, the
held-out means of :data:`METRIC_KEYS` and ``median_orientation_deg``."""


def variant_config(base: str | None, overrides: list[str], variant: str, seed: int | None = None) -> MuNetConfig:
    """The configuration of one variant: base preset/file ← user overrides ← seed ← the variant's own.

    ``seed`` (when given) sets both ``train.seed`` and ``data.seed``."""
    seeded = [] if seed is None else [f"train.seed={seed}", f"data.seed={seed}"]
    return load_config(base or "cpu", [*overrides, *seeded, *VARIANTS[variant]])


def run_ablation(
    data: str,
    heldout: str,
    out: str | Path,
    base: str | None = None,
    overrides: list[str] | None = None,
    variants: list[str] | None = None,
    max_eval_samples: int | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
) -> list[AblationRow]:
    """Train and evaluate every variant once per seed (all variants of a seed before the next
    seed); write ``out/ablation.{md,csv}`` after each run; return the rows, by variant then seed."""
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"seeds must be distinct and at least one, got {list(seeds)}")
    out = Path(out).resolve()
    rows: list[AblationRow] = []
    for seed in seeds:
        for variant in variants or list(VARIANTS):
            folder = out / variant / f"seed_{seed}"
            log.info("ablation: %s, seed %d (%s)", variant, seed, folder)
            config = variant_config(base, overrides or [], variant, seed)
            row: AblationRow = {"variant": variant, "seed": seed}
            try:
                result = run_training(
                    config, data=data, out=str(folder.parent), name=folder.name, resume=folder.exists()
                )
                error = result.error
            except FatalTrainingError as fatal:  # e.g. finished on a non-finite loss: one failed row
                error = fatal
            if error is not None:
                row["status"] = f"failed: {error}"
            else:
                summary = evaluate(folder, heldout, folder / "report", max_samples=max_eval_samples)
                row |= {
                    "status": "ok",
                    **{k: summary[k] for k in METRIC_KEYS},
                    _MEDIAN_ORIENTATION: summary["median"]["orientation_deg"],
                }
            rows.append(row)
            rows = write_table(rows, out)
    return rows


def write_table(rows: list[AblationRow], out: Path) -> list[AblationRow]:
    """Write ``out/ablation.csv`` (every run) and ``out/ablation.md`` (:func:`markdown_table`);
    return the rows ordered by variant (first appearance) then as given."""
    order = {variant: i for i, variant in enumerate(dict.fromkeys(row["variant"] for row in rows))}
    rows = sorted(rows, key=lambda row: order[row["variant"]])
    with open(out / "ablation.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=_CSV_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)
    (out / "ablation.md").write_text(markdown_table(rows))
    return rows


def markdown_table(rows: list[AblationRow]) -> str:
    """Markdown: per variant, mean ± sample standard deviation over its finished seeds of every
    metric (``n``: seeds that went in of those run; failed seeds named with their error), then the
    difference of each variant to :data:`REFERENCE` on :data:`MAIN_METRICS`, paired by seed."""
    variants = list(dict.fromkeys(str(row["variant"]) for row in rows))
    seeds = sorted({int(row["seed"]) for row in rows})
    ok = {v: {int(r["seed"]): r for r in rows if r["variant"] == v and r["status"] == "ok"} for v in variants}
    lines = [
        f"Seeds {', '.join(map(str, seeds))} (`train.seed` and `data.seed`) per variant, the same held-out "
        "shards for all. Each cell: mean ± sample standard deviation over the `n` seeds whose run finished "
        "(failed runs are left out). Lower is better except normal_consistency and body_on_mask; "
        f"`{_MEDIAN_ORIENTATION}` is each run's median over the samples (the orientation summary to quote).",
        "",
    ]
    main_rows = []
    for variant in variants:
        runs = [r for r in rows if r["variant"] == variant]
        cells = [_spread([float(r[key]) for r in ok[variant].values()]) for key in _STATISTICS]
        failed = "; ".join(f"seed {r['seed']}: {_one_line(str(r['status']))}" for r in runs if r["status"] != "ok")
        main_rows.append([variant, f"{len(ok[variant])}/{len(runs)}", *cells, failed])
    header = ["variant", "n", *_STATISTICS, "failed"]
    lines += table(header, main_rows, align="lr" + "r" * len(_STATISTICS) + "l")
    if REFERENCE in ok and len(variants) > 1:
        lines += [
            "",
            f"Difference to {REFERENCE} (variant − {REFERENCE}, negative: lower error than {REFERENCE}): "
            "mean ± sample standard deviation of the per-seed differences over the `pairs` seeds both runs "
            "finished; a difference is beyond seed noise only when clearly larger than its ±. Without a "
            "common seed, the difference of the means (no ±).",
            "",
        ]
        differences = []
        for variant in (v for v in variants if v != REFERENCE):
            pairs = set(ok[variant]) & set(ok[REFERENCE])
            cells = [_difference(ok[variant], ok[REFERENCE], key) for key in MAIN_METRICS]
            differences.append([variant, str(len(pairs)), *cells])
        lines += table(["variant", "pairs", *MAIN_METRICS], differences, align="lr" + "r" * len(MAIN_METRICS))
    return "\n".join(lines) + "\n"


def _difference(runs: dict[int, AblationRow], reference: dict[int, AblationRow], key: str) -> str:
    """``runs`` − ``reference`` (finished runs by seed) on ``key``: the spread of the per-seed
    differences over their common seeds; without one, the difference of the means (no ±)."""
    pairs = sorted(set(runs) & set(reference))
    if pairs:
        return _spread([float(runs[s][key]) - float(reference[s][key]) for s in pairs], signed=True)
    if runs and reference:
        mine, theirs = (statistics.fmean(float(r[key]) for r in side.values()) for side in (runs, reference))
        return _number(mine - theirs, signed=True)
    return "–"


def _spread(values: list[float], signed: bool = False) -> str:
    """``mean ± sample std`` (``± –`` for one value, ``–`` for none), both with the decimals of
    :func:`_decimals` for the larger of the two."""
    if not values:
        return "–"
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    decimals = _decimals(mean, std)
    return f"{_number(mean, signed, decimals)} ± {'–' if math.isnan(std) else _number(std, False, decimals)}"


def _decimals(*values: float) -> int:
    """Decimals showing three significant digits of the largest finite magnitude, 1 to 6."""
    largest = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    return 3 if largest == 0 else min(6, max(1, 2 - math.floor(math.log10(largest))))


def _number(value: float, signed: bool = False, decimals: int | None = None) -> str:
    decimals = _decimals(value) if decimals is None else decimals
    return f"{value:{'+' if signed else ''}.{decimals}f}"


def _one_line(text: str, limit: int = 120) -> str:
    """The first line of ``text``, shortened, with ``|`` escaped (a Markdown table cell)."""
    line = (text.strip().splitlines() or [""])[0]
    return escape_cell(line[: limit - 1] + "…" if len(line) > limit else line)
