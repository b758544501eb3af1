"""Results of a sweep: the per-trial table, the Pareto front of body vs clothed error, the best
configuration.

Rows are read back from the Tune experiment folder (so an interrupted sweep can be reported too).
A trial's status is one of:

- ``done``: trained and evaluated on the held-out shards;
- ``stopped``: stopped early by ASHA (no held-out evaluation);
- ``error``: raised (the message is in the table, the traceback in the trial's ``error.txt``);
- ``unfinished``: interrupted; ``--resume`` continues it.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from munet.config import load_config, save_config
from munet.markdown import escape_cell, table
from munet.metrics import METRIC_KEYS
from munet.tune.settings import ObjectiveSettings, SweepSpec, trial_name

log = logging.getLogger(__name__)

STATUSES = ("done", "stopped", "error", "unfinished")


@dataclass
class TrialRow:
    """One trial of a sweep.

    Attributes:
        name: ``trial_NNN`` (creation order).
        trial_id: Tune's trial id.
        status: one of :data:`STATUSES`.
        params: the sampled parameters.
        metrics: held-out metrics (keys of :data:`METRIC_KEYS`) when ``done``, else empty.
        score: the scalar combination of the two objectives (NaN unless ``done``).
        step: last training step reported (0 if none).
        error: the exception message of a failed trial.
        path: the trial folder.
        pareto: on the Pareto front of the finished trials.
    """

    name: str
    trial_id: str
    status: str
    params: dict[str, float]
    metrics: dict[str, float] = field(default_factory=dict)
    score: float = math.nan
    step: int = 0
    error: str = ""
    path: str = ""
    pareto: bool = False


@dataclass
class SweepResults:
    """Every trial of a sweep, in creation order, judged by ``objective``."""

    rows: list[TrialRow]
    objective: ObjectiveSettings

    @property
    def done(self) -> list[TrialRow]:
        """Trials evaluated on the held-out shards."""
        return [row for row in self.rows if row.status == "done"]

    @property
    def unfinished(self) -> list[TrialRow]:
        """Trials an interruption left unfinished."""
        return [row for row in self.rows if row.status == "unfinished"]

    def objectives(self, row: TrialRow) -> tuple[float, float]:
        """``(body error, clothed error)`` of a finished trial."""
        return row.metrics[self.objective.body_metric], row.metrics[self.objective.cloth_metric]

    @property
    def ranked(self) -> list[TrialRow]:
        """Finished trials whose two objectives are finite (a diverged model's are not)."""
        return [row for row in self.done if all(map(math.isfinite, self.objectives(row)))]

    @property
    def best(self) -> TrialRow | None:
        """The ranked trial with the lowest score (always on the Pareto front), if any."""
        return min(self.ranked, key=lambda row: row.score, default=None)


def pareto_mask(points: list[tuple[float, ...]]) -> list[bool]:
    """For each point (all objectives minimised), whether no other point dominates it (is no
    worse in every objective and better in one)."""

    def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    return [not any(dominates(other, point) for other in points) for point in points]


def _error_message(trial_path: Path) -> str:
    """The last line of a failed trial's ``error.txt`` (the exception and its message)."""
    error_file = trial_path / "error.txt"
    if not error_file.is_file():
        return "failed (no error.txt)"
    lines = [line.strip() for line in error_file.read_text().splitlines() if line.strip()]
    return lines[-1] if lines else "failed"


def _status(trial: Any, evaluated: bool) -> str:
    if trial.status == "ERROR":
        return "error"
    if trial.status == "TERMINATED":
        return "done" if evaluated else "stopped"
    return "unfinished"


def collect_results(experiment: str | Path, objective: ObjectiveSettings) -> SweepResults:
    """Read every trial of the Tune experiment folder ``experiment``."""
    from ray.tune import ExperimentAnalysis

    rows = []
    for trial in ExperimentAnalysis(str(experiment)).trials:
        last = trial.last_result or {}
        evaluated = "eval_samples" in last  # only the final, post-evaluation result has it
        status = _status(trial, evaluated)
        path = Path(trial.path)
        rows.append(
            TrialRow(
                name=trial_name(trial),
                trial_id=trial.trial_id,
                status=status,
                params={key: float(value) for key, value in trial.config.items()},
                metrics={key: float(last[key]) for key in METRIC_KEYS} if evaluated else {},
                score=float(last["score"]) if evaluated else math.nan,
                step=int(last.get("step", 0)),
                error=_error_message(path) if status == "error" else "",
                path=str(path),
            )
        )
    rows.sort(key=lambda row: row.name)
    results = SweepResults(rows=rows, objective=objective)
    ranked = results.ranked
    for row, on_front in zip(ranked, pareto_mask([results.objectives(r) for r in ranked]), strict=True):
        row.pareto = on_front
    return results


def _columns(results: SweepResults) -> tuple[list[str], list[str]]:
    params = sorted({name for row in results.rows for name in row.params})
    objective = results.objective
    metrics = [
        objective.body_metric,
        objective.cloth_metric,
        *[key for key in METRIC_KEYS if key not in (objective.body_metric, objective.cloth_metric)],
    ]
    return params, metrics


def write_csv(results: SweepResults, path: Path) -> None:
    """Every trial as one CSV row: name, id, status, parameters, metrics, score, Pareto flag,
    step, error (metrics empty for trials that were not evaluated)."""
    params, metrics = _columns(results)
    header = ["trial", "trial_id", "status", *params, *metrics, "score", "pareto", "step", "error"]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in results.rows:
            writer.writerow(
                [
                    row.name,
                    row.trial_id,
                    row.status,
                    *[row.params.get(name, "") for name in params],
                    *[row.metrics.get(name, "") for name in metrics],
                    "" if math.isnan(row.score) else row.score,
                    int(row.pareto),
                    row.step,
                    row.error,
                ]
            )


def _cell(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}g}"


def markdown_table(results: SweepResults) -> str:
    """The results as Markdown: one line per trial, best first among the finished ones."""
    params, metrics = _columns(results)
    objective = results.objective
    best = results.best
    lines = [
        f"{len(results.rows)} trials: "
        + ", ".join(f"{sum(row.status == s for row in results.rows)} {s}" for s in STATUSES),
        "",
        f"Objectives (held out, lower is better): {objective.body_metric} and {objective.cloth_metric}; "
        f"score = {objective.body_metric} / {objective.body_scale:g} + {objective.cloth_metric} / "
        f"{objective.cloth_scale:g}. ★ best score, ◆ Pareto front.",
        "",
    ]

    def order(row: TrialRow) -> tuple[bool, float, str]:
        return row.status != "done", row.score if math.isfinite(row.score) else math.inf, row.name

    rows = []
    for row in sorted(results.rows, key=order):
        mark = " ★" if row is best else (" ◆" if row.pareto else "")
        rows.append(
            [
                f"{row.name}{mark}",
                row.status,
                *[_cell(row.params.get(name)) for name in params],
                *[_cell(row.metrics.get(name), 4) for name in metrics],
                _cell(row.score, 4),
                str(row.step),
                escape_cell(row.error),
            ]
        )
    header = ["trial", "status", *params, *metrics, "score", "step", "note"]
    align = "ll" + "r" * (len(params) + len(metrics) + 2) + "l"
    return "\n".join(lines + table(header, rows, align=align)) + "\n"


def plot_pareto(results: SweepResults, path: Path) -> None:
    """Body error against clothed error of the evaluated trials, the Pareto front highlighted and
    the best-score trial starred (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objective = results.objective
    fig, ax = plt.subplots(figsize=(6.5, 5))
    ranked = results.ranked
    for row in ranked:
        body, cloth = results.objectives(row)
        ax.scatter(body, cloth, s=60 if row.pareto else 30, color="#d0502a" if row.pareto else "#8a8a8a", zorder=3)
        ax.annotate(
            row.name.removeprefix("trial_"), (body, cloth), textcoords="offset points", xytext=(4, 4), fontsize=8
        )
    front = sorted(results.objectives(row) for row in ranked if row.pareto)
    if front:
        ax.step(
            [p[0] for p in front],
            [p[1] for p in front],
            where="post",
            color="#d0502a",
            linewidth=1.2,
            label="Pareto front",
            zorder=2,
        )
    best = results.best
    if best is not None:
        ax.scatter(
            *results.objectives(best),
            marker="*",
            s=260,
            facecolor="none",
            edgecolor="k",
            linewidth=1.2,
            label=f"best score ({best.name})",
            zorder=4,
        )
    ax.set_xlabel(f"body error: {objective.body_metric} (held out)")
    ax.set_ylabel(f"clothed error: {objective.cloth_metric} (held out)")
    ax.set_title(f"{len(ranked)} evaluated of {len(results.rows)} trials")
    if ranked:
        ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_best_config(results: SweepResults, path: Path) -> Path | None:
    """Write the configuration the best trial trained with (a full :class:`MuNetConfig`, which
    ``jobs/train.py --config`` accepts) to ``path``; ``None`` when no trial finished."""
    best = results.best
    if best is None:
        return None
    save_config(load_config(Path(best.path) / "config.yaml"), path)
    return path


def write_results(results: SweepResults, spec: SweepSpec) -> dict[str, Path]:
    """Write ``results.csv``, ``results.md``, ``pareto.png`` and (when a trial finished)
    ``best_config.yaml`` into ``spec.out``; returns them by name."""
    out = Path(spec.out)
    files = {"csv": out / "results.csv", "markdown": out / "results.md", "plot": out / "pareto.png"}
    write_csv(results, files["csv"])
    files["markdown"].write_text(markdown_table(results))
    plot_pareto(results, files["plot"])
    best = write_best_config(results, out / "best_config.yaml")
    if best is not None:
        files["best_config"] = best
    log.info("sweep results: %s", ", ".join(str(p) for p in files.values()))
    return files
