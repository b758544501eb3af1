"""Benchmark: body-model forward and forward+backward time on this machine.

``munet bench body [--batches 1 16 64] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import time

import torch

from munet.body import build_body_model
from munet.config import BodyConfig


def _best_ms(fn, repeats: int) -> float:
    fn()  # warm-up (kernel compilation, allocator)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="munet bench body", description=__doc__)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--topology", default=BodyConfig.topology)
    args = parser.parse_args(argv)

    body = build_body_model(BodyConfig(topology=args.topology))
    print(f"anny {args.topology}: {body.num_vertices} vertices, torch threads {torch.get_num_threads()}")
    print(f"{'batch':>5} {'forward ms':>11} {'fwd+bwd ms':>11} {'ms/body fwd':>12}")
    gen = torch.Generator().manual_seed(0)
    for batch in args.batches:
        pose = 0.2 * torch.randn(batch, body.pose_dim, generator=gen)
        shape = torch.rand(batch, body.shape_dim, generator=gen)

        def forward() -> None:
            with torch.no_grad():
                body(pose, shape)

        def forward_backward() -> None:
            p = pose.clone().requires_grad_(True)
            s = shape.clone().requires_grad_(True)
            body(p, s).vertices.square().sum().backward()

        fwd = _best_ms(forward, args.repeats)
        bwd = _best_ms(forward_backward, args.repeats)
        print(f"{batch:>5} {fwd:>11.1f} {bwd:>11.1f} {fwd / batch:>12.2f}")


if __name__ == "__main__":
    main()
