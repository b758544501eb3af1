"""Benchmark: surface metrics (Chamfer / P2S) and PA-MPJPE on this machine's CPU.

``munet bench metrics [--samples 10000] [--exhaustive-points 10000] [--batch 64]``

Surfaces: a unit icosphere (10,242 vertices, 20,480 faces) as ground truth and a bumpy copy of
it (errors of about 1 cm) as prediction. Compared, for one point-to-surface direction with the
same points: MuNet's pruned search, PyTorch3D's exhaustive kernel and trimesh's rtree query.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

import numpy as np
import torch
import trimesh
from pytorch3d.loss.point_mesh_distance import point_face_distance

from munet.metrics import chamfer_p2s, pa_mpjpe, point_to_surface_distance


def _ms(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``fn()`` over ``repeats`` runs, in milliseconds."""
    return 1000.0 * min(timeit.repeat(fn, number=1, repeat=repeats))


def _report(label: str, ms: float, extra: str = "") -> None:
    print(f"{label:<64}{ms:>10.2f} ms  {extra}".rstrip())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="munet bench metrics", description=__doc__)
    parser.add_argument("--samples", type=int, default=10_000, help="points sampled per surface")
    parser.add_argument(
        "--exhaustive-points",
        type=int,
        default=10_000,
        help="points for the exhaustive PyTorch3D kernel (about 2 ms per point here; 0 skips)",
    )
    parser.add_argument("--batch", type=int, default=64, help="batch size for PA-MPJPE")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    gt_mesh = trimesh.creation.icosphere(subdivisions=5)
    bumps = 1.0 + 0.01 * np.sin(7 * gt_mesh.vertices).sum(axis=1, keepdims=True)
    verts = torch.tensor(gt_mesh.vertices, dtype=torch.float32)
    faces = torch.tensor(gt_mesh.faces)
    pred_verts = verts * torch.tensor(bumps, dtype=torch.float32)
    print(f"torch threads {torch.get_num_threads()}; meshes {len(verts)} vertices, {len(faces)} faces")

    out = chamfer_p2s(pred_verts[None], faces, verts[None], faces, num_samples=args.samples, seed=0)
    summary = ", ".join(f"{k} {v.item():.3f}" for k, v in out.items())
    ms = _ms(
        lambda: chamfer_p2s(pred_verts[None], faces, verts[None], faces, args.samples, 0),
        args.repeats,
    )
    _report(f"chamfer_p2s, {args.samples} + {args.samples} samples, both directions", ms, summary)

    points = torch.from_numpy(trimesh.Trimesh(pred_verts.numpy(), gt_mesh.faces).sample(args.samples, seed=0)).float()
    ms = _ms(lambda: point_to_surface_distance(points[None], verts[None], faces), args.repeats)
    _report(f"point_to_surface_distance, {args.samples} points (pruned, exact)", ms)

    trimesh.proximity.closest_point(gt_mesh, points[:100].numpy())  # builds the rtree first
    ms = _ms(lambda: trimesh.proximity.closest_point(gt_mesh, points.numpy()), 1)
    _report(f"trimesh closest_point, {args.samples} points (rtree, float64)", ms)

    if args.exhaustive_points > 0:
        subset = points[: args.exhaustive_points].contiguous()
        tris = verts[faces].contiguous()
        first = torch.zeros(1, dtype=torch.long)
        ms = _ms(lambda: point_face_distance(subset, first, tris, first, len(subset), 1e-6), 1)
        _report(f"PyTorch3D exhaustive point_face_distance, {len(subset)} points", ms)

    gen = torch.Generator().manual_seed(0)
    gt = torch.randn(args.batch, 17, 3, generator=gen)
    pred = gt + 0.05 * torch.randn(args.batch, 17, 3, generator=gen)
    ms = _ms(lambda: pa_mpjpe(pred, gt), max(args.repeats, 20))
    _report(f"pa_mpjpe, batch {args.batch} x 17 joints, forward", ms)

    def forward_backward() -> None:
        pa_mpjpe(pred.clone().requires_grad_(True), gt).sum().backward()

    ms = _ms(forward_backward, max(args.repeats, 20))
    _report(f"pa_mpjpe, batch {args.batch} x 17 joints, forward + backward", ms)


if __name__ == "__main__":
    main()
