"""``munet ablation`` (also ``python jobs/ablation.py``): the mutualistic mechanism ablated with the
same compute for every variant, over seeds.

    munet ablation --data DIR --heldout DIR --out DIR [--seeds 0 1] [--steps 300] [--workers 2] [--config cpu]

Trains body-only, clothed-only (detached predicted body), guided-without-feedback and full mutual
once per seed (train.seed and data.seed) in OUT/<variant>/seed_<s> (an existing run folder is
resumed), evaluates each run, and writes OUT/ablation.csv (one row per run) and OUT/ablation.md
(mean ± sample standard deviation over seeds per variant, and the paired difference to full
mutual). Exits 1 if a run failed. Logic: :mod:`munet.tune.ablation`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from munet.console import setup_console
from munet.ray_utils import init_ray
from munet.tune.ablation import DEFAULT_SEEDS, VARIANTS, run_ablation


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``munet ablation``; returns the exit code (1 when a run failed)."""
    parser = argparse.ArgumentParser(
        prog="munet ablation", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True)
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", help="base YAML or preset (default cpu)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS))
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=list(DEFAULT_SEEDS),
        help="train every variant once per seed (default: %(default)s; 2 or more give a spread)",
    )
    parser.add_argument("--max-eval-samples", type=int)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds must be distinct, got {args.seeds}")
    setup_console()
    init_ray()
    overrides = [f"train.steps={args.steps}", f"train.workers={args.workers}", *args.overrides]
    rows = run_ablation(
        args.data, args.heldout, args.out, args.config, overrides, args.variants, args.max_eval_samples, args.seeds
    )
    print(Path(args.out, "ablation.md").read_text())
    return 1 if any(r["status"] != "ok" for r in rows) else 0
