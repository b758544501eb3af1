"""``munet make-shards`` (also ``python jobs/make_shards.py``): generate synthetic clothed-human
shards with Ray Data.

    munet make-shards --out DIR_OR_URI --num-samples N --seed S \
        [--image-size 256] [--samples-per-shard 16] [--views 4] [--yaw -180 180] [--workers W]

Runs on the cluster at ``--address`` / ``RAY_ADDRESS`` (e.g. under ``ray job submit``), else on a
local loopback-only Ray; ``--in-process`` writes the same shards in this process, without Ray
(small sets). Check the result with ``munet data check DIR_OR_URI``.

An interrupted run continues: run the same command again and the shards it completed are kept
(checked against their recorded SHA-256), only the others are written. ``manifest.json`` is
always written last; ``--overwrite`` deletes the old manifest and shards before writing anything.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from munet.config import DataConfig, load_config
from munet.console import setup_console
from munet.data.camera import CameraSettings
from munet.data.generate import GenerationSettings, generate_shards, generate_shards_here
from munet.ray_utils import init_ray


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``munet make-shards``; returns the exit code (2 when the output already holds a manifest
    or another generation's files, without ``--overwrite``)."""
    parser = argparse.ArgumentParser(
        prog="munet make-shards", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="output folder or URI (file://, s3://, gs://)")
    parser.add_argument("--num-samples", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=256, help="stored crop side, pixels")
    parser.add_argument("--samples-per-shard", type=int, default=DataConfig.samples_per_shard)
    parser.add_argument(
        "--views",
        type=int,
        default=GenerationSettings.views,
        help="views rendered per subject (amortises the geometry)",
    )
    parser.add_argument("--cloth-points", type=int, default=DataConfig.cloth_points)
    parser.add_argument(
        "--yaw",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=CameraSettings.yaw,
        help="camera yaw range in degrees, 0 = in front of the person "
        f"(default {CameraSettings.yaw[0]:g} {CameraSettings.yaw[1]:g}: all around)",
    )
    parser.add_argument("--workers", type=int, help="writer actors (default: the cluster's CPUs)")
    parser.add_argument("--config", help="YAML config or preset; its body section picks the body model")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing shard folder (its manifest is deleted first)"
    )
    parser.add_argument("--in-process", action="store_true", help="generate in this process, without Ray (small sets)")
    parser.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--num-cpus", type=int, help="logical CPUs of a local Ray")
    args = parser.parse_args(argv)
    setup_console()

    settings = GenerationSettings(
        num_samples=args.num_samples,
        seed=args.seed,
        image_size=args.image_size,
        samples_per_shard=args.samples_per_shard,
        views=args.views,
        cloth_points=args.cloth_points,
        camera=dataclasses.replace(CameraSettings(), yaw=tuple(args.yaw)),
    )
    body_config = load_config(args.config).body
    try:
        if args.in_process:
            manifest = generate_shards_here(args.out, settings, body_config=body_config, overwrite=args.overwrite)
        else:
            init_ray(address=args.address, num_cpus=args.num_cpus, include_dashboard=False)
            manifest = generate_shards(
                args.out,
                settings,
                body_config=body_config,
                workers=args.workers,
                overwrite=args.overwrite,
            )
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {manifest.num_samples} samples in {len(manifest.shards)} shards to {args.out}")
    return 0
