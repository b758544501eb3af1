"""Benchmark: how far and how fast a configuration learns, on its training set and on unseen people.

``munet bench learn [--work DIR] [--config small] [--set KEY=VALUE ...] [--steps N]
[--minutes M] [--eval-every K] [--device cuda] [--resume]``

1. Data: a training set (``--train-samples``, seed ``--seed``, ``--views`` views per person) and a
   held-out set (``--heldout-samples``, seed ``--seed + 1``: other people, poses, clothes and
   cameras, one view per person) are rendered by the project's generator
   (:func:`munet.data.generate.generate_shards_here`) into ``WORK/train`` and ``WORK/heldout``,
   with the camera anywhere around the person (yaw in ``--yaw``, default -180 to 180°). Later
   runs with the same data flags reuse them.
2. Training, in this process, with :func:`munet.train.local.train_local` (the training step,
   optimiser, learning-rate schedule and non-finite guard of every trainer): batches of
   ``train.batch_size`` decoded from the shards by :class:`munet.data.decode.Decoder` and
   augmented as ``data.augment`` says, each epoch in a new seeded order, for ``--steps`` steps
   (the learning-rate schedule spans them) or until ``--minutes`` of training, whichever ends
   first.
3. Evaluation of the untrained network (step 0), every ``--eval-every`` steps and at the end,
   in eval mode with no teacher forcing, by the per-batch metrics of ``munet evaluate``
   (:func:`munet.eval.evaluate.evaluate_batch`), on the held-out set and on ``--train-eval``
   training samples spread over the set (not augmented): PA-MPJPE and MPJPE (means, mm), global
   orientation (median, degrees), Chamfer (mean, cm). The wall time counts training only: data
   decoding included, evaluations left out.
4. Output in ``WORK``: ``learn.json`` (every evaluation with the means and medians of all
   metrics), ``learn.md`` (the table), ``learn.png`` (the curves against steps and against wall
   time), rewritten at each evaluation, and ``checkpoint/``, the final training state:
   ``munet evaluate --checkpoint WORK/checkpoint --data WORK/heldout --surface-samples 5000``
   (the bench's ``--surface-samples``) recomputes the last held-out row. ``--resume`` continues
   that checkpoint, with its configuration, up to a larger ``--steps`` and extends the curve.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from munet.config import BodyConfig, MuNetConfig, config_to_dict, load_config
from munet.console import setup_console
from munet.data.camera import CameraSettings
from munet.data.decode import Decoder, iter_samples
from munet.data.generate import GenerationSettings, generate_shards_here
from munet.data.shards import MANIFEST_NAME, ShardStore
from munet.eval.evaluate import EVAL_BATCH_SIZE, EvalItem, evaluate_batch, iter_eval_items, summarise
from munet.iterutils import chunked
from munet.markdown import table
from munet.model import MuNet

COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("pa_mpjpe_mm", "mean", "PA-MPJPE", "mm"),
    ("mpjpe_mm", "mean", "MPJPE", "mm"),
    ("orientation_deg", "median", "orientation", "°"),
    ("chamfer_cm", "mean", "Chamfer", "cm"),
)
"""The metrics of the table, the log lines and the plot: key of
:data:`munet.metrics.METRIC_KEYS`, the statistic shown, label, unit."""

SETS = (("train", "train"), ("heldout", "held-out"))
"""The evaluated sets: key in an evaluation record, label."""


def ensure_shards(folder: Path, settings: GenerationSettings, body_config: BodyConfig) -> None:
    """Generate ``settings`` into ``folder`` unless it already holds exactly that set.

    Raises:
        SystemExit: ``folder`` holds shards generated with other settings.
    """
    store = ShardStore(str(folder))
    if store.exists(MANIFEST_NAME):
        found = store.read_manifest().generator
        if found != json.loads(json.dumps(settings.to_dict())):
            raise SystemExit(
                f"{folder} holds shards generated with other settings ({found}); delete it or give another --work"
            )
        return
    start = time.perf_counter()
    generate_shards_here(str(folder), settings, body_config=body_config)
    print(
        f"generated {settings.num_samples} samples (seed {settings.seed}) in {folder} "
        f"in {time.perf_counter() - start:.0f} s"
    )


def read_raw_samples(location: str) -> list[dict[str, Any]]:
    """Every raw (undecoded) sample of a shard folder, in key order, each shard checked against
    the manifest (:func:`munet.data.decode.iter_samples`); they are decoded when drawn."""
    return list(iter_samples(location, Decoder(), decode=lambda raw: raw))


def training_batches(
    raws: list[dict[str, Any]], decoder: Decoder, batch_size: int, seed: int, first_step: int
) -> Iterator[dict[str, np.ndarray]]:
    """Endless stacked batches, starting with the batch of step ``first_step`` (1-based).

    The samples are visited epoch after epoch, each epoch in the order of a permutation seeded by
    ``(seed, epoch)``; the batch of step ``s`` holds positions ``(s - 1) * batch_size`` onwards
    of that sequence, so a resumed run trains on the batches of an uninterrupted one. Each
    sample is decoded (and augmented) by ``decoder`` when drawn.
    """
    count = len(raws)
    position = (first_step - 1) * batch_size
    while True:
        positions = range(position, position + batch_size)
        orders = {
            epoch: np.random.default_rng([seed, epoch]).permutation(count) for epoch in {p // count for p in positions}
        }
        samples = [decoder(raws[orders[p // count][p % count]]) for p in positions]
        yield {key: np.stack([sample[key] for sample in samples]) for key in samples[0]}
        position += batch_size


def evaluate_items(model: MuNet, items: list[EvalItem], surface_samples: int) -> dict[str, Any]:
    """Means and medians (:func:`munet.eval.evaluate.summarise`) of the metrics of ``items``,
    predicted in eval mode without teacher forcing, in the batches and with the surface-sampling
    seed (0) of ``munet evaluate``; the model is back in train mode after."""
    model.eval()
    try:
        rows = [
            row
            for batch in chunked(items, EVAL_BATCH_SIZE)
            for row in evaluate_batch(model, batch, surface_samples, seed=0)[0]
        ]
    finally:
        model.train()
    return summarise(rows)


def headline(summary: dict[str, Any], key: str, statistic: str) -> float:
    """One statistic (``mean`` or ``median``) of one metric of a :func:`summarise` summary."""
    return summary[key] if statistic == "mean" else summary["median"][key]


def _evaluated_sets(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The entries of :data:`SETS` that some record holds (``--train-eval 0`` leaves out "train")."""
    return [(key, label) for key, label in SETS if any(record[key] is not None for record in records)]


def markdown_table(report: dict[str, Any]) -> str:
    """``learn.md``: what was run, then one table row per evaluation."""
    sets = _evaluated_sets(report["evaluations"])
    header = ["step", "wall s", "loss"] + [
        f"{label} {name} ({unit}{', median' if statistic == 'median' else ''})"
        for _, label in sets
        for _, statistic, name, unit in COLUMNS
    ]
    rows = []
    for record in report["evaluations"]:
        loss = "" if record["loss"] is None else f"{record['loss']:.4f}"
        rows.append(
            [str(record["step"]), f"{record['wall_s']:.1f}", loss]
            + [
                "" if record[key] is None else f"{headline(record[key], metric, statistic):.1f}"
                for key, _ in sets
                for metric, statistic, _, _ in COLUMNS
            ]
        )
    lines = [f"# Learning curve of `{report['config_name']}`", "", report["description"], ""]
    return "\n".join(lines + table(header, rows, align="r")) + "\n"


def plot_curves(report: dict[str, Any], path: Path) -> None:
    """``learn.png``: each metric of :data:`COLUMNS` against steps (top row) and wall time
    (bottom row); held-out solid, training set dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = report["evaluations"]
    fig, axes = plt.subplots(2, len(COLUMNS), figsize=(4 * len(COLUMNS), 7), squeeze=False)
    for row, (axis_key, axis_label) in enumerate((("step", "step"), ("wall_s", "training wall time (s)"))):
        for ax, (metric, statistic, name, unit) in zip(axes[row], COLUMNS, strict=True):
            for key, label in _evaluated_sets(records):
                points = [
                    (record[axis_key], headline(record[key], metric, statistic))
                    for record in records
                    if record[key] is not None
                ]
                ax.plot(*zip(*points, strict=True), "o-" if key == "heldout" else "s--", markersize=3, label=label)
            ax.set_xlabel(axis_label)
            ax.set_title(f"{name} ({unit}, {statistic})", fontsize=10)
            ax.grid(alpha=0.3)
    axes[0, 0].legend()
    fig.suptitle(f"Learning curves of {report['config_name']} (held-out: solid, training set: dashed)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


class LearningCurve:
    """Evaluates the model at step 0, every ``eval_every`` steps, at step ``steps`` and when
    ``minutes`` of training are spent, and rewrites the report each time. An instance is the
    ``on_step`` callback of :func:`munet.train.local.train_local`: true when the time is up.

    Attributes:
        trained_s: training seconds before the current stretch (evaluations left out).
        stretch_start: ``time.perf_counter()`` when the current stretch of training began.
    """

    def __init__(
        self,
        model: MuNet,
        sets: dict[str, list[EvalItem]],
        report: dict[str, Any],
        work: Path,
        *,
        steps: int,
        eval_every: int,
        minutes: float | None,
        surface_samples: int,
    ):
        self.model, self.sets, self.report, self.work = model, sets, report, work
        self.steps, self.eval_every, self.minutes = steps, eval_every, minutes
        self.surface_samples = surface_samples
        records = report["evaluations"]
        self.trained_s = records[-1]["wall_s"] if records else 0.0
        self.stretch_start = time.perf_counter()
        self._losses: list[float] = []

    def evaluate(self, step: int) -> None:
        """Evaluate every set, append the record, print it and rewrite the report."""
        record: dict[str, Any] = {
            "step": step,
            "wall_s": self.trained_s,
            "loss": float(np.mean(self._losses)) if self._losses else None,
            **{key: None for key, _ in SETS},
        }
        for key, items in self.sets.items():
            record[key] = evaluate_items(self.model, items, self.surface_samples)
        self._losses = []
        self.report["evaluations"].append(record)
        parts = [f"step {step:6d}", f"{record['wall_s']:8.1f} s"]
        if record["loss"] is not None:
            parts.append(f"loss {record['loss']:.4f}")
        for key, label in SETS:
            if record[key] is not None:
                parts.append(
                    f"{label} "
                    + ", ".join(
                        f"{name} {headline(record[key], metric, statistic):.1f} {unit}"
                        for metric, statistic, name, unit in COLUMNS
                    )
                )
        print(" | ".join(parts), flush=True)
        (self.work / "learn.json").write_text(json.dumps(self.report, indent=1) + "\n")
        (self.work / "learn.md").write_text(markdown_table(self.report))
        plot_curves(self.report, self.work / "learn.png")

    def __call__(self, entry: dict[str, float]) -> bool:
        """After training step ``entry["step"]``: evaluate if due; true when the time is up."""
        step = int(entry["step"])
        self._losses.append(entry["loss"])
        trained = self.trained_s + time.perf_counter() - self.stretch_start
        out_of_time = self.minutes is not None and trained >= 60.0 * self.minutes
        if step % self.eval_every == 0 or step == self.steps or out_of_time:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.trained_s += time.perf_counter() - self.stretch_start
            self.evaluate(step)
            self.stretch_start = time.perf_counter()
        return out_of_time


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``munet bench learn``."""
    parser = argparse.ArgumentParser(
        prog="munet bench learn", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", default="learn", help="folder of the data, report and checkpoint")
    parser.add_argument("--config", default="small", help="preset name or YAML path")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. --set train.lr=1e-3 (repeatable)",
    )
    parser.add_argument("--steps", type=int, help="training steps (default: train.steps of the config)")
    parser.add_argument("--minutes", type=float, help="stop once training has taken this long")
    parser.add_argument("--eval-every", type=int, help="steps between evaluations (default: steps / 10)")
    parser.add_argument("--train-samples", type=int, default=256, help="size of the training set")
    parser.add_argument(
        "--views", type=int, default=GenerationSettings.views, help="views per person in the training set"
    )
    parser.add_argument("--heldout-samples", type=int, default=64, help="size of the held-out set")
    parser.add_argument(
        "--train-eval", type=int, default=16, help="training samples evaluated at each evaluation (0: none)"
    )
    parser.add_argument("--render-size", type=int, default=256, help="side of the rendered crops, pixels")
    parser.add_argument(
        "--yaw",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=CameraSettings.yaw,
        help="camera yaw range in degrees, 0 = in front of the person",
    )
    parser.add_argument("--surface-samples", type=int, default=5000, help="points per surface for Chamfer")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training set (held-out: seed + 1)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--resume", action="store_true", help="continue WORK/checkpoint (its configuration) up to --steps"
    )
    return parser


def _data_settings(args: argparse.Namespace, config: MuNetConfig) -> dict[str, GenerationSettings]:
    """What to generate for each set."""
    base = GenerationSettings(
        num_samples=args.train_samples,
        seed=args.seed,
        image_size=args.render_size,
        views=args.views,
        cloth_points=max(GenerationSettings.cloth_points, config.data.cloth_points),
        camera=dataclasses.replace(CameraSettings(), yaw=tuple(args.yaw)),
    )
    return {
        "train": base,
        "heldout": dataclasses.replace(base, num_samples=args.heldout_samples, seed=args.seed + 1, views=1),
    }


def _evaluation_sets(work: Path, config: MuNetConfig, train_samples: int, train_eval: int) -> dict[str, list[EvalItem]]:
    """The held-out set, and ``train_eval`` training samples spread evenly over the training set
    (several people rather than the views of the first few), decoded without augmentation."""
    decoder = Decoder.from_config(config.data, augment=False)
    sets = {"heldout": list(iter_eval_items(str(work / "heldout"), decoder))}
    if train_eval > 0:
        stride = max(1, train_samples // train_eval)
        sets["train"] = list(islice(iter_eval_items(str(work / "train"), decoder), 0, stride * train_eval, stride))
    return sets


def _description(args: argparse.Namespace, config: MuNetConfig) -> str:
    """The first lines of ``learn.md``: what was trained on what."""
    return (
        f"{args.train_samples} training samples (seed {args.seed}, {args.views} views per person), "
        f"{args.heldout_samples} held-out samples (seed {args.seed + 1}, one view per person), camera "
        f"yaw {args.yaw[0]:g} to {args.yaw[1]:g}°; batch {config.train.batch_size}, {args.steps} steps"
        f"{'' if args.minutes is None else f' or {args.minutes:g} min of training'}, "
        f"device {args.device}; overrides: {' '.join(args.overrides) or 'none'}.\n"
        "Wall time: training only (evaluations left out). Orientation: median over the samples; "
        "the other metrics: means."
    )


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_console()
    from munet.body import build_body_model
    from munet.checkpoint.load import model_from_checkpoint
    from munet.checkpoint.state import load_checkpoint
    from munet.train.local import train_local

    work = Path(args.work)
    checkpoint = work / "checkpoint"
    if args.resume and args.overrides:
        raise SystemExit("--resume continues the checkpoint's configuration: leave out --set")
    state, previous = None, None
    if args.resume:
        state = load_checkpoint(checkpoint)
        previous = json.loads((work / "learn.json").read_text())
        args.config, args.overrides = previous["config_name"], previous["overrides"]  # for the report
    config = load_config(args.config, args.overrides) if state is None else state.config
    args.steps = args.steps or config.train.steps
    args.eval_every = args.eval_every or max(1, args.steps // 10)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=args.steps))
    if state is not None and state.step >= args.steps:
        raise SystemExit(f"{checkpoint} is at step {state.step} already: give a larger --steps to resume")

    settings = _data_settings(args, config)
    for name, generation in settings.items():
        ensure_shards(work / name, generation, config.body)
    sets = _evaluation_sets(work, config, args.train_samples, args.train_eval)

    torch.manual_seed(config.train.seed)
    model = MuNet(config, build_body_model(config.body)) if state is None else model_from_checkpoint(state, config)
    model.to(args.device).train()
    report = {
        "config_name": args.config,
        "overrides": args.overrides,
        "description": _description(args, config),
        "config": config_to_dict(config),
        "data": {name: generation.to_dict() for name, generation in settings.items()},
        "train_eval_samples": len(sets.get("train", [])),
        "surface_samples": args.surface_samples,
        "checkpoint": str(checkpoint),
        "evaluations": []
        if previous is None
        else [record for record in previous["evaluations"] if record["step"] <= state.step],
    }
    curve = LearningCurve(
        model,
        sets,
        report,
        work,
        steps=args.steps,
        eval_every=args.eval_every,
        minutes=args.minutes,
        surface_samples=args.surface_samples,
    )
    if state is None:
        curve.evaluate(0)
    first_step = 1 if state is None else state.step + 1
    batches = training_batches(
        read_raw_samples(str(work / "train")),
        Decoder.from_config(config.data),
        config.train.batch_size,
        args.seed,
        first_step,
    )
    curve.stretch_start = time.perf_counter()
    train_local(config, batches, args.steps, checkpoint, model=model, state=state, on_step=curve)
    print(
        f"report: {work / 'learn.md'}, {work / 'learn.png'}; checkpoint: {checkpoint} "
        f"(munet evaluate --checkpoint {checkpoint} --data {work / 'heldout'} "
        f"--surface-samples {args.surface_samples} gives the last held-out row)"
    )


if __name__ == "__main__":
    main()
