"""Benchmark: procedural clothed humans, per stage.

``munet bench synth [--count N] [--seed S] [--voxel M] [--save DIR]``

Makes ``count`` clothed humans with one :class:`~munet.data.synth.human.ClothedHumanSampler` on
one thread and prints the mean seconds per stage, the mean CPU seconds per person and the
mesh sizes; ``--save`` also writes each clothed mesh as a coloured PLY file for inspection.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from munet.body import build_body_model
from munet.config import BodyConfig
from munet.data.synth.human import ClothedHumanSampler, SynthSettings


def main(argv: list[str] | None = None) -> None:
    """Run ``munet bench synth`` with ``argv`` (default: the command line)."""
    parser = argparse.ArgumentParser(
        prog="munet bench synth", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=10, help="people to make")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first person")
    parser.add_argument("--voxel", type=float, default=SynthSettings.voxel, help="metres")
    parser.add_argument("--save", type=Path, help="folder for the clothed meshes (PLY)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    voxel = args.voxel
    sampler = ClothedHumanSampler(
        build_body_model(BodyConfig()),
        SynthSettings(voxel=voxel, skin_offset=max(SynthSettings.skin_offset, 0.6 * voxel)),
    )
    sampler(np.random.default_rng(args.seed))  # warm-up: compiles or loads the Warp kernels
    totals: dict[str, float] = {}
    cpu, faces = 0.0, []
    for seed in range(args.seed, args.seed + args.count):
        start = time.process_time()
        human = sampler(np.random.default_rng(seed))
        cpu += time.process_time() - start
        faces.append(len(human.cloth_faces))
        for stage, seconds in human.timings.items():
            totals[stage] = totals.get(stage, 0.0) + seconds
        print(f"seed {seed}: {human.pose_family:<12} {', '.join(human.garments)}")
        if args.save:
            import trimesh

            args.save.mkdir(parents=True, exist_ok=True)
            mesh = trimesh.Trimesh(human.cloth_vertices, human.cloth_faces, process=False)
            mesh.visual.vertex_colors = np.round(human.cloth_vertex_colors * 255).astype(np.uint8)
            mesh.export(args.save / f"human_{seed:05d}.ply")
    stages = ", ".join(f"{k} {1000 * v / args.count:.0f}" for k, v in totals.items())
    print(f"mean wall ms per stage: {stages}; total {1000 * sum(totals.values()) / args.count:.0f}")
    print(f"mean CPU s per person: {cpu / args.count:.3f}; mean faces: {np.mean(faces):.0f}")
