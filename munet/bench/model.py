"""Benchmark: MuNet size and speed on this machine.

``munet bench model [--configs cpu paper] [--batch 8] [--repeats 3]``

For each configuration: parameter counts (encoder, body branch, clothed branch), the time of one
training step (forward, all losses, backward) on a batch of ``--batch`` for the first
configuration, and the inference time per image (batch of 1, ``torch.no_grad``) for every one.
The batch is the mean body 3 m in front of the camera with a random image: the timing does not
depend on the values.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

import torch

from munet.body import BodyModel, build_body_model
from munet.config import DataConfig, load_config
from munet.model import MuNet
from munet.model.templates import ANNY_TO_CAMERA
from munet.train.step import training_step


def _ms(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``fn()`` over ``repeats`` runs after one warm-up run, milliseconds."""
    fn()
    return 1000.0 * min(timeit.repeat(fn, number=1, repeat=repeats))


def _batch(data: DataConfig, body: BodyModel, size: int) -> dict[str, torch.Tensor]:
    """A decoded-sample batch of ``size`` copies: the rest-pose mean body at 3 m, "clothes" 2 cm
    further out radially, ``data.image_size`` crops of noise."""
    generator = torch.Generator().manual_seed(0)
    image_size = data.image_size
    with torch.no_grad():
        rest = body()
    place = torch.tensor([0.0, 0.0, 3.0])
    vertices = rest.vertices[0] @ ANNY_TO_CAMERA.T + place
    joints = rest.joints[0] @ ANNY_TO_CAMERA.T + place
    focal = 1.4 * image_size
    K = torch.tensor([[focal, 0, (image_size - 1) / 2], [0, focal, (image_size - 1) / 2], [0, 0, 1]])
    pick = torch.randint(len(vertices), (data.cloth_points,), generator=generator)
    radial = torch.nn.functional.normalize(vertices - vertices.mean(dim=0), dim=-1)
    pixels = joints @ K.T
    sample = {
        "image": torch.rand(3, image_size, image_size, generator=generator),
        "K": K,
        "body_vertices": vertices,
        "body_joints": joints,
        "joints_2d": pixels[:, :2] / pixels[:, 2:],
        "body_pose": torch.zeros(body.pose_dim),
        "body_shape": body.neutral_shape(1)[0],
        "cloth_points": vertices[pick] + 0.02 * radial[pick],
        "cloth_normals": radial[pick],
    }
    return {key: value.expand(size, *value.shape).contiguous() for key, value in sample.items()}


def _count(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="munet bench model", description=__doc__)
    parser.add_argument("--configs", nargs="+", default=["cpu", "paper"], help="presets or YAML files")
    parser.add_argument("--batch", type=int, default=8, help="training batch size timed")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    print(f"torch threads {torch.get_num_threads()}")
    for index, name in enumerate(args.configs):
        config = load_config(name)
        body = build_body_model(config.body)
        model = MuNet(config, body)
        t = model.templates
        print(
            f"\n[{name}] {config.model.encoder}, {config.data.image_size} px, body {config.model.body_channels}"
            f"×{config.model.body_blocks}, cloth {config.model.cloth_channels}×{config.model.cloth_blocks}; "
            f"graphs: coarse {t.coarse.num_vertices} v, cloth {t.cloth.num_vertices} v, body {t.num_fine_vertices} v"
        )
        print(
            f"  parameters: {_count(model) / 1e6:.2f} M (encoder {_count(model.encoder) / 1e6:.2f} M, "
            f"body GCN {_count(model.body_gcn) / 1e6:.3f} M, cloth GCN {_count(model.cloth_gcn) / 1e6:.3f} M, "
            f"param regressor {_count(model.param_regressor) / 1e6:.3f} M)"
        )
        if index == 0:
            batch = _batch(config.data, body, args.batch)
            model.train()

            def train_step() -> None:
                model.zero_grad(set_to_none=True)
                loss, _ = training_step(model, batch, 1, config)
                loss.backward()

            ms = _ms(train_step, args.repeats)
            print(
                f"  training step (forward + losses + backward), batch {args.batch}: {ms:.0f} ms "
                f"({ms / args.batch:.0f} ms/sample)"
            )
        model.eval()
        single = _batch(config.data, body, 1)
        with torch.no_grad():
            ms = _ms(lambda: model(single["image"], single["K"]), args.repeats)
        print(f"  inference, 1 image: {ms:.0f} ms")


if __name__ == "__main__":
    main()
