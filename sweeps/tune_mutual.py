"""Sweep MuNet's mutualistic loss weights and schedules with Ray Tune + Optuna + ASHA.

    python sweeps/tune_mutual.py --out runs/sweep --trials 16 --steps 200 [--data DIR --val-data DIR]
    python sweeps/tune_mutual.py --out runs/sweep --resume      # continue an interrupted sweep

Writes OUT/results.csv, OUT/results.md, OUT/pareto.png and OUT/best_config.yaml (for
``jobs/train.py --config``). See ``--help``; the logic lives in :mod:`munet.tune`.
"""

import sys

from munet.tune.cli import main

if __name__ == "__main__":
    sys.exit(main())
