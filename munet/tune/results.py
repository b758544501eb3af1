"""Results of a sweep: the per-trial table, the Pareto front of body vs clothed error, the best
configuration.

Rows are read back from the Tune experiment (so an interrupted sweep can be reported too), and the
files are written into the sweep folder, both through its location (a folder or a URI). A trial's
status is one of:

- ``done``: trained and evaluated on the held-out shards;
- ``stopped``: stopped early by ASHA (no held-out evaluation);
- ``error``: failed (the message is in the table; the traceback in the ``error`` of the trial's
  last result, or in its ``error.txt`` when Tune recorded the failure: a driver lost more often
  than ``max_failures`` allows);
- ``unfinished``: interrupted; ``--resume`` continues it.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from munet.markdown import escape_cell, table
from munet.metrics import METRIC_KEYS
from munet.tune.settings import ObjectiveSettings, SweepSpec, experiment_location, trial_location, trial_name

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
        path: the trial folder (a path or a URI).
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


def _last_line(text: str) -> str:
    """The last non-empty line of a traceback: the exception and its message."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "failed"


def _error_message(trial: str, last: dict[str, Any]) -> str:
    """What a failed trial (folder or URI ``trial``, last result ``last``) failed with: the error
    it reported, else the one Tune recorded in its ``error.txt``."""
    from munet.data.shards import ShardStore

    if "error" in last:
        return _last_line(last["error"])
    folder = ShardStore(trial)
    if not folder.exists("error.txt"):
        return "failed (no error.txt)"
    return _last_line(folder.read_bytes("error.txt").decode(errors="replace"))


def _status(trial: Any, last: dict[str, Any]) -> str:
    """The status (:data:`STATUSES`) of a Tune trial whose last result is ``last``."""
    if trial.status == "ERROR":
        return "error"
    if trial.status == "TERMINATED":
        if "error" in last:  # run_trial reports its own failures instead of raising them
            return "error"
        return "done" if "eval_samples" in last else "stopped"  # only the evaluation result has it
    return "unfinished"


def collect_results(out: str, objective: ObjectiveSettings) -> SweepResults:
    """Read every trial of the sweep in the folder or URI ``out``.

    Raises:
        ValueError: ``out`` holds no Tune experiment (yet).
    """
    from ray.tune import ExperimentAnalysis

    rows = []
    for trial in ExperimentAnalysis(experiment_location(out)).trials:
        last = trial.last_result or {}
        evaluated = "eval_samples" in last
        status = _status(trial, last)
        name = trial_name(trial)
        path = trial_location(out, name)
        rows.append(
            TrialRow(
                name=name,
                trial_id=trial.trial_id,
                status=status,
                params={key: float(value) for key, value in trial.config.items()},
                metrics={key: float(last[key]) for key in METRIC_KEYS} if evaluated else {},
                score=float(last["score"]) if evaluated else math.nan,
                step=int(last.get("step", 0)),
                error=_error_message(path, last) if status == "error" else "",
                path=path,
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


def csv_table(results: SweepResults) -> str:
    """Every trial as one CSV row: name, id, status, parameters, metrics, score, Pareto flag,
    step, error (metrics empty for trials that were not evaluated)."""
    params, metrics = _columns(results)
    header = ["trial", "trial_id", "status", *params, *metrics, "score", "pareto", "step", "error"]
    handle = io.StringIO(newline="")
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
    return handle.getvalue()


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


def pareto_png(results: SweepResults) -> bytes:
    """Body error against clothed error of the evaluated trials, the Pareto front highlighted and
    the best-score trial starred (matplotlib, Agg), as PNG."""
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
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    return png.getvalue()


def write_results(results: SweepResults, spec: SweepSpec) -> dict[str, str]:
    """Write ``results.csv``, ``results.md``, ``pareto.png`` and (when a trial finished)
    ``best_config.yaml`` into ``spec.out`` (a folder or a URI); returns their locations by name.

    ``best_config.yaml`` is the ``config.yaml`` the best trial trained with: a full
    :class:`~munet.config.MuNetConfig`, which ``jobs/train.py --config`` accepts.
    """
    from munet.data.shards import ShardStore

    contents = {
        "csv": ("results.csv", csv_table(results).encode()),
        "markdown": ("results.md", markdown_table(results).encode()),
        "plot": ("pareto.png", pareto_png(results)),
    }
    best = results.best
    if best is not None:
        contents["best_config"] = ("best_config.yaml", ShardStore(best.path).read_bytes("config.yaml"))
    out = ShardStore(spec.out)
    for name, data in contents.values():
        out.write_bytes(name, data)
    files = {key: out.uri(name) for key, (name, _) in contents.items()}
    log.info("sweep results: %s", ", ".join(files.values()))
    return files
