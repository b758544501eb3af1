"""Benchmark: distributed training throughput on Ray Train, by number of workers.

``munet bench train --data DIR [--workers 1 2] [--steps 40] [--config cpu] [--nodes 2] [--set K=V ...]``

For each worker count, trains ``--steps`` steps of the given configuration with
:func:`munet.train.distributed.run_training` on a local Ray (the same code as ``munet train``),
streaming the shards in ``--data``, and reads back the scalars rank 0 logs every
``train.log_every`` steps: samples/s over all workers and the fraction of step time spent waiting
for the next batch. The first ``--warmup`` steps (worker start, first batches, allocator warm-up)
are left out of the figures. The per-worker batch is ``train.batch_size``, so 2 workers process
twice the samples per step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from munet.config import load_config


def _scalars(tensorboard_dir: Path, tag: str, after_step: int) -> list[float]:
    """Values of ``tag`` logged after ``after_step`` in a TensorBoard folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tensorboard_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [event.value for event in events.Scalars(tag) if event.step > after_step]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="munet bench train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="shard folder or URI (munet make-shards)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to run")
    parser.add_argument("--steps", type=int, default=40, help="training steps per run")
    parser.add_argument("--warmup", type=int, default=10, help="first steps left out of the figures")
    parser.add_argument("--config", default="cpu", help="preset name or YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--num-cpus", type=int, default=None, help="logical CPUs of the local Ray, per node (default: max(4, cores))"
    )
    parser.add_argument(
        "--nodes", type=int, default=1, help="nodes of the local Ray: more than 1 simulates a cluster on this machine"
    )
    args = parser.parse_args(argv)

    from munet.ray_utils import init_ray
    from munet.train.distributed import run_training

    init_ray(num_cpus=args.num_cpus, include_dashboard=False, nodes=args.nodes)
    print(
        f"training throughput, config {args.config} {' '.join(args.overrides)}, "
        f"{args.steps} steps (first {args.warmup} left out), {os.cpu_count()} cores, "
        f"{args.nodes} Ray node(s):"
    )
    rows = []
    for workers in args.workers:
        config = load_config(
            args.config,
            [
                *args.overrides,
                f"train.workers={workers}",
                f"train.steps={args.steps}",
                "train.log_every=5",
                f"train.checkpoint_every={args.steps}",
            ],
        )
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            result = run_training(config, data=args.data, out=out, name="bench")
            wall = time.perf_counter() - start
            if result.error is not None:
                raise SystemExit(f"training with {workers} worker(s) failed: {result.error}")
            tensorboard = Path(out) / "bench" / "tensorboard"
            speed = statistics.median(_scalars(tensorboard, "samples_per_s", args.warmup))
            wait = statistics.mean(_scalars(tensorboard, "data_wait_frac", args.warmup))
        rows.append((workers, speed, wait, wall))
        print(
            f"  {workers} worker(s) × batch {config.train.batch_size}: {speed:6.2f} samples/s, "
            f"data wait {100 * wait:4.1f} % of step time, wall {wall:.0f} s (incl. start-up)"
        )
    base = rows[0][1]
    for workers, speed, _, _ in rows[1:]:
        print(f"  speed-up {rows[0][0]} → {workers} workers: {speed / base:.2f}×")


if __name__ == "__main__":
    main()
