"""``munet demo`` (also ``python jobs/demo.py``, ``make demo``): synthetic data → Ray Train
(2 workers, DDP) → evaluation → report.

    munet demo [--out runs/demo] [--steps 150] [--samples 96] [--config small]

Everything runs on a local Ray started here (or the cluster at RAY_ADDRESS). On a 2-core CPU
machine it takes about 10–15 minutes; the report path is printed at the end.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``munet demo``; returns the exit code (training's, when training fails)."""
    parser = argparse.ArgumentParser(
        prog="munet demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--config", default="small", help="preset or YAML (default: small, the fast CPU preset)")
    parser.add_argument("--samples", type=int, default=96, help="synthetic training samples")
    parser.add_argument("--eval-samples", type=int, default=16, help="held-out samples")
    args = parser.parse_args(argv)
    from munet.console import setup_console  # after parsing: --help needs none of these

    setup_console()  # before Ray Data is imported: it reads its console level then
    from munet.data.generate import generate_shards
    from munet.eval import evaluate
    from munet.train.cli import main as train_main

    out = Path(args.out).resolve()
    train_data, eval_data = out / "data" / "train", out / "data" / "heldout"

    code = train_main(
        [
            "--out",
            str(out),
            "--name",
            "train",
            "--steps",
            str(args.steps),
            "--workers",
            "2",
            "--config",
            args.config,
            "--data",
            str(train_data),
            "--generate",
            str(args.samples),
            *(["--resume"] if (out / "train").exists() else []),
        ]
    )
    if code != 0:
        return code
    if not (eval_data / "manifest.json").exists():
        generate_shards(str(eval_data), num_samples=args.eval_samples, seed=10_000, image_size=256)
    summary = evaluate(out / "train", str(eval_data), out / "report")
    print(f"\nMuNet demo finished: {summary['num_samples']} held-out samples evaluated.")
    print(f"  report:   {out / 'report' / 'metrics.md'}")
    print(f"  pictures: {out / 'report' / 'overlays.png'}, {out / 'report' / 'histograms.png'}")
    print(f"  training: {out / 'train'} (TensorBoard: tensorboard --logdir {out / 'train' / 'tensorboard'})")
    print(f"  your photos: munet predict PHOTO... --checkpoint {out / 'train'} --out predictions/")
    return 0
