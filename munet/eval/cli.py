"""``munet evaluate`` (also ``python jobs/evaluate.py``): evaluate a checkpoint.

    munet evaluate --checkpoint RUN_OR_CKPT --data DIR --out DIR [--fit]
    munet evaluate --checkpoint RUN_OR_CKPT --data DIR --out DIR --protocol {h36m-p2,3dpw,3dhp} \
        --regressor J_regressor_h36m.npy
    munet evaluate --checkpoint RUN_OR_CKPT --data SCAN_SHARDS --out DIR --protocol icon

Writes metrics.json (means, medians under "median", and the sample count of each metric under
"count"), per_sample.csv, metrics.md, overlays.png and histograms.png. Logic: :mod:`munet.eval`.

--protocol own (default): mpjpe_mm, pa_mpjpe_mm, pve_mm, orientation_deg, chamfer_cm, p2s_cm,
normal_consistency, body_on_mask, each over the samples holding its target.
--protocol h36m-p2 / 3dpw / 3dhp: the HMR benchmarks (mpjpe_mm, pa_mpjpe_mm; 3dhp adds pck150 and
auc, percent) on joints regressed from the predicted SMPL mesh by --regressor (needs a model
trained with body.backend=smplx body.model_type=smpl).
--protocol icon: ICON/ECON's clothed-surface scoring on scan data (munet convert thuman2, cape,
renderpeople): chamfer_cm and p2s_cm on 1,000 samples per mesh, ×100 in the frame where the scan is
1.8 units tall (nominal cm), and ICON's NC from 4 normal renders; the body is predicted, not given.

Exit codes: 0 done, 2 bad arguments (including a missing or unfitting regressor, or samples
without the ground truth the protocol needs).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from munet.console import setup_console
from munet.eval.evaluate import ICON_PROTOCOL, OWN_PROTOCOL, PROTOCOL_CHOICES, ProtocolError, evaluate
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
    parser.add_argument(
        "--protocol",
        choices=PROTOCOL_CHOICES,
        default=OWN_PROTOCOL,
        help=(
            "own (default): this project's metrics; h36m-p2, 3dpw, 3dhp: benchmark protocols (need --regressor); "
            "icon: ICON/ECON clothed-surface scoring on scans"
        ),
    )
    parser.add_argument(
        "--regressor", help="Human3.6M joint regressor J_regressor_h36m.npy (17, 6890), for the benchmark protocols"
    )
    args = parser.parse_args(argv)
    if args.protocol not in (OWN_PROTOCOL, ICON_PROTOCOL) and args.regressor is None:
        parser.error(f"--protocol {args.protocol} needs --regressor J_regressor_h36m.npy (shape (17, 6890))")
    setup_console()
    try:
        summary = evaluate(
            args.checkpoint,
            args.data,
            args.out,
            max_samples=args.max_samples,
            num_surface_samples=args.surface_samples,
            device=args.device,
            fit=FitSettings(steps=args.fit_steps) if args.fit else None,
            protocol=args.protocol,
            regressor=args.regressor,
        )
    except ProtocolError as error:
        print(f"munet evaluate: error: {error}", file=sys.stderr)
        return 2
    print(f"report: {args.out}/metrics.md ({summary['num_samples']} samples)")
    return 0
