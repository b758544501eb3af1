"""``munet evaluate`` (also ``python jobs/evaluate.py``): evaluate a checkpoint.

    munet evaluate --checkpoint RUN_OR_CKPT --data DIR --out DIR [--fit]

Writes metrics.json (mpjpe_mm, pa_mpjpe_mm, pve_mm, orientation_deg, chamfer_cm, p2s_cm,
normal_consistency, body_on_mask: means, and medians under "median"; and counts), per_sample.csv,
metrics.md, overlays.png and histograms.png. Logic: :mod:`munet.eval`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from munet.console import setup_console
from munet.eval.evaluate import evaluate
from munet.fit import FitSettings


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``munet evaluate``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="munet evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder, state.pt, or run folder")
    parser.add_argument("--data", required=True, help="held-out shard folder or URI")
    parser.add_argument("--out", required=True, help="report folder")
    parser.add_argument("--max-samples", type=int, help="evaluate at most this many samples")
    parser.add_argument("--surface-samples", type=int, default=10_000, help="points per surface")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--fit", action="store_true", help="fit the predictions to each sample's person mask first (munet.fit)"
    )
    parser.add_argument("--fit-steps", type=int, default=FitSettings.steps, help="fitting steps (with --fit)")
    args = parser.parse_args(argv)
    setup_console()
    summary = evaluate(
        args.checkpoint,
        args.data,
        args.out,
        max_samples=args.max_samples,
        num_surface_samples=args.surface_samples,
        device=args.device,
        fit=FitSettings(steps=args.fit_steps) if args.fit else None,
    )
    print(f"report: {args.out}/metrics.md ({summary['num_samples']} samples)")
    return 0
