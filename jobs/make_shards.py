"""Generate synthetic clothed-human shards with Ray Data.

    python jobs/make_shards.py --out DIR_OR_URI --num-samples N --seed S \
        [--image-size 256] [--samples-per-shard 16] [--views 4] [--yaw -180 180] [--workers W]

Runs on the cluster at ``--address`` / ``RAY_ADDRESS`` (e.g. under ``ray job submit``), else on a
local loopback-only Ray. Check the result with ``python -m munet.data check DIR_OR_URI``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from munet.config import DataConfig, load_config
from munet.data.camera import CameraSettings
from munet.data.generate import GenerationSettings, generate_shards
from munet.ray_utils import init_ray


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobs/make_shards.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder or URI (file://, s3://, gs://)")
    parser.add_argument("--num-samples", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=256, help="stored crop side, pixels")
    parser.add_argument("--samples-per-shard", type=int, default=DataConfig.samples_per_shard)
    parser.add_argument("--views", type=int, default=GenerationSettings.views,
                        help="views rendered per subject (amortises the geometry)")
    parser.add_argument("--cloth-points", type=int, default=DataConfig.cloth_points)
    parser.add_argument("--yaw", type=float, nargs=2, metavar=("MIN", "MAX"), default=CameraSettings.yaw,
                        help="camera yaw range in degrees, 0 = in front of the person "
                        f"(default {CameraSettings.yaw[0]:g} {CameraSettings.yaw[1]:g}: all around)")
    parser.add_argument("--workers", type=int, help="writer actors (default: the cluster's CPUs)")
    parser.add_argument("--config", help="YAML config or preset; its body section picks the body model")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing shard folder")
    parser.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--num-cpus", type=int, help="logical CPUs of a local Ray")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    settings = GenerationSettings(
        num_samples=args.num_samples,
        seed=args.seed,
        image_size=args.image_size,
        samples_per_shard=args.samples_per_shard,
        views=args.views,
        cloth_points=args.cloth_points,
        camera=dataclasses.replace(CameraSettings(), yaw=tuple(args.yaw)),
    )
    init_ray(address=args.address, num_cpus=args.num_cpus, include_dashboard=False)
    manifest = generate_shards(
        args.out, settings, body_config=load_config(args.config).body,
        workers=args.workers, overwrite=args.overwrite,
    )
    print(f"wrote {manifest.num_samples} samples in {len(manifest.shards)} shards to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
