"""Benchmark: synthetic-data generation per core, and shard reading + decoding through Ray Data.

``munet bench data [--samples 12] [--views 4] [--image-size 256] [--copies 16]``

1. Generation runs in this process on one core (torch and llvmpipe limited to one thread), the
   way one Ray generation worker runs; it reports samples/s and the time split between geometry
   (clothed human + surface points), rendering (camera, background, rasterisation) and encoding.
2. Reading writes the generated samples ``--copies`` times (distinct keys, same bytes) to a shard
   folder, then times full passes of :func:`munet.data.ray_dataset.ray_dataset` on a local Ray (the
   first pass warms the workers up and is reported separately).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from munet.data.generate import GenerationSettings, SampleGenerator


def _bench_generation(args) -> list[tuple[str, dict[str, bytes]]]:
    import torch

    torch.set_num_threads(1)
    # One extra subject at the end serves as warm-up (shader compilation, first allocations).
    settings = GenerationSettings(
        num_samples=args.samples + args.views,
        seed=args.seed,
        image_size=args.image_size,
        views=args.views,
    )
    start = time.perf_counter()
    generator = SampleGenerator(settings)
    setup = time.perf_counter() - start
    generator.members(args.samples)
    generator.timings = dict.fromkeys(generator.timings, 0.0)
    generator.geometry_stages = {}
    start = time.perf_counter()
    samples = [generator.members(i) for i in range(args.samples)]
    total = time.perf_counter() - start
    generator.close()
    print(
        f"generation, 1 core, {settings.image_size}² px, {settings.views} view(s)/subject, "
        f"{args.samples} samples (setup {setup:.1f} s, not counted):"
    )
    print(f"  {args.samples / total:.2f} samples/s/core ({1000 * total / args.samples:.0f} ms/sample)")
    for part, seconds in generator.timings.items():
        print(f"  {part:<9} {1000 * seconds / args.samples:7.0f} ms/sample ({100 * seconds / total:4.1f} %)")
    stages = ", ".join(
        f"{stage} {1000 * seconds / args.samples:.0f}" for stage, seconds in generator.geometry_stages.items()
    )
    print(f"  geometry stages, ms/sample: {stages}")
    return samples


def _bench_reading(samples, args) -> None:
    from munet.config import DataConfig
    from munet.data.ray_dataset import ray_dataset
    from munet.data.shards import Manifest, ShardStore, shard_name
    from munet.ray_utils import init_ray

    settings = GenerationSettings(num_samples=len(samples) * args.copies, views=args.views)
    with tempfile.TemporaryDirectory() as folder:
        store = ShardStore(folder)
        infos = []
        for copy in range(args.copies):
            with store.writer(shard_name(copy)) as writer:
                for index, (_, members) in enumerate(samples):
                    writer.write(settings.key(copy * len(samples) + index), members)
            infos.append(writer.info)
        store.write_manifest(Manifest(shards=infos))
        total = sum(info.num_samples for info in infos)
        init_ray(num_cpus=args.num_cpus, include_dashboard=False)
        config = DataConfig(image_size=args.train_size, augment=True)
        print(
            f"reading + decoding with Ray Data ({total} samples in {len(infos)} shards → "
            f"{args.train_size}² px, {config.cloth_points} points, {args.num_cpus} logical CPUs):"
        )
        for attempt in ("first pass (cold)", "second pass", "third pass"):
            dataset = ray_dataset(folder, config)
            start = time.perf_counter()
            count = sum(len(batch["image"]) for batch in dataset.iter_torch_batches(batch_size=16))
            elapsed = time.perf_counter() - start
            print(f"  {attempt:<18} {count / elapsed:7.1f} samples/s ({count} samples, {elapsed:.1f} s)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="munet bench data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=12, help="samples to generate")
    parser.add_argument("--views", type=int, default=GenerationSettings.views, help="views per subject")
    parser.add_argument("--image-size", type=int, default=256, help="generated crop size")
    parser.add_argument("--train-size", type=int, default=128, help="decoded image size")
    parser.add_argument("--copies", type=int, default=16, help="shards written for reading")
    parser.add_argument("--num-cpus", type=int, default=4, help="logical CPUs of the local Ray")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("LP_NUM_THREADS", "1")  # llvmpipe: one rasteriser thread, like 1 core
    samples = _bench_generation(args)
    _bench_reading(samples, args)


if __name__ == "__main__":
    main()
