"""``munet train`` (also ``python jobs/train.py``): flags → configuration → Ray → training →
summary."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from munet.config import MuNetConfig, load_config, save_config
from munet.console import setup_console

log = logging.getLogger("munet.train")


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``munet train``."""
    parser = argparse.ArgumentParser(
        prog="munet train",
        description="Train MuNet with Ray Train (DDP). Run it directly (a local Ray is started) or "
        "through `ray job submit --working-dir . -- python jobs/train.py ...` on a cluster.",
    )
    parser.add_argument(
        "--data",
        help="shard folder or URI; default: generate a small synthetic set under OUT/data "
        "(a weighted mixture of folders: data.sources in the config instead)",
    )
    parser.add_argument("--out", required=True, help="run storage root, local folder or s3:// / gs:// URI")
    parser.add_argument("--name", default="train", help="run name; the run lives in OUT/NAME (default: train)")
    parser.add_argument(
        "--generate",
        type=int,
        metavar="N",
        help="if --data holds no shards yet, generate N synthetic samples there first",
    )
    parser.add_argument("--config", help="YAML file or preset name (cpu, paper); default: cpu")
    parser.add_argument("--workers", type=int, help="Ray Train workers (overrides train.workers)")
    parser.add_argument("--steps", type=int, help="training steps (overrides train.steps)")
    parser.add_argument("--resume", action="store_true", help="continue OUT/NAME from its latest checkpoint")
    parser.add_argument("--use-gpu", action="store_true", help="one GPU per worker, NCCL")
    parser.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--num-cpus", type=int, help="logical CPUs of a local Ray (default: max(4, cores))")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. --set train.lr=1e-3 (repeatable)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> MuNetConfig:
    """The run configuration: preset/file ← --set overrides ← explicit flags."""
    overrides = list(args.overrides)
    if args.workers is not None:
        overrides.append(f"train.workers={args.workers}")
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    if args.use_gpu:
        overrides.append("train.use_gpu=true")
    return load_config(args.config or "cpu", overrides)


def main(argv: list[str] | None = None) -> int:
    """Run ``munet train``; returns the process exit code: 0 when training finished with a
    finite loss; 1 when it failed (bad data or NaN/inf losses stop it at once, with what to do)
    or finished on a non-finite loss; 2 when ``--resume`` cannot continue the run (no readable
    checkpoint, or another model configuration) or the run exists and ``--resume`` is missing. A
    resumed run already at ``--steps`` (or past it) trains nothing and returns 0."""
    args = build_parser().parse_args(argv)  # first: --help and bad flags need none of the imports below
    from munet.checkpoint.find import NoUsableCheckpointError, checkpoint_step
    from munet.data.generate import generate_shards
    from munet.ray_utils import init_ray
    from munet.train.distributed import FatalTrainingError, ResumeConfigError, resume_checkpoint, run_training

    setup_console()
    config = config_from_args(args)
    try:  # before Ray starts or anything is written: a run that cannot continue stays as it was
        resume_from = resume_checkpoint(config, args.out, args.name, args.resume)
    except (FileExistsError, NoUsableCheckpointError, ResumeConfigError) as exc:
        log.error("%s", exc)
        return 2
    done = checkpoint_step(resume_from) if resume_from is not None else None
    if done is not None and done >= config.train.steps:
        steps = config.train.steps
        log.info("%s/%s is at step %d already (--steps %d): nothing to train", args.out, args.name, done, steps)
        return 0
    init_ray(address=args.address, num_cpus=args.num_cpus)

    if config.data.sources and (args.data or args.generate):
        log.error("give either --data/--generate or data.sources (a mixture), not both")
        return 2
    data = None if config.data.sources else args.data or str(Path(args.out) / "data")
    if data is not None and (args.data is None or args.generate):
        if not (Path(data) / "manifest.json").exists():
            count = args.generate or config.data.synthetic_samples
            log.info("generating %d synthetic samples in %s", count, data)
            generate_shards(
                out=data,
                num_samples=count,
                seed=config.data.seed,
                image_size=max(config.data.image_size, 256),
                samples_per_shard=config.data.samples_per_shard,
                body_config=config.body,
            )
    if "://" not in args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        save_config(config, Path(args.out) / f"{args.name}.config.yaml")
    try:
        result = run_training(
            config, data=data, out=args.out, name=args.name, resume=args.resume, resume_from=resume_from
        )
    except FatalTrainingError as exc:
        log.error("%s", exc)
        return 1
    if result.error is not None:
        log.error("training failed: %s", result.error)
        return 1
    metrics = result.metrics or {}
    log.info(
        "finished at step %s (resumed from step %s), loss %.4f, %s non-finite step(s) skipped",
        metrics.get("step"),
        metrics.get("resumed_from"),
        metrics.get("loss", float("nan")),
        metrics.get("skipped_steps", 0),
    )
    log.info("last checkpoint: %s", result.checkpoint.path if result.checkpoint else None)
    return 0
