"""Benchmark: prediction on image files, milliseconds per image on this machine.

``munet bench predict [--config cpu | --checkpoint PATH] [--images 16] [--batch-sizes 1 16] [--repeats 3]
[--device cpu] [--fit-steps 150] [--writers 2]``

Predicts with ``--checkpoint`` (``shipped``: the shipped model, as ``munet predict`` without
``--checkpoint``), else with an untrained model of ``--config`` (the network's speed does not depend
on its weights; the writing's hardly does). Writes ``--images`` copies of scikit-image's astronaut
photograph (512², bundled with the package) to a temporary folder. For each batch size it prints:

- *forward*: the network alone on a batch of crops (best of ``--repeats`` after a warm-up), per image;
- *end to end*: the wall time of :func:`munet.predict.run.predict_files` over all the images (read +
  crop, batched inference, meshes, GLB, overlay, JSON), per image: the best of ``--repeats`` runs
  and the spread (slowest run); then the time spent in each stage, per image, in the best run (the
  outputs are written on ``--writers`` threads while the next batch is predicted, so the stages can
  add up to more than the wall time);
- *with a mask*: the same with a ``<stem>_mask.png`` beside every photo (an ellipse around the
  astronaut: the fitting cost depends on the step count and mesh sizes, not on the mask's shape),
  so that each prediction is also fitted to its mask (``--fit-steps``, :mod:`munet.fit`; 0 leaves
  this run out).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import timeit
from pathlib import Path

import cv2
import numpy as np
import torch

from munet.body import build_body_model
from munet.checkpoint.shipped import shipped_model
from munet.checkpoint.state import save_checkpoint
from munet.config import load_config
from munet.fit import FitSettings
from munet.model import MuNet
from munet.predict.crop import person_crop
from munet.predict.predictor import Predictor, resolve_device
from munet.predict.run import DISPLAY_SIZE, WRITERS, RunSummary, predict_files


def _write_photos(folder: Path, count: int, with_masks: bool) -> list[Path]:
    from skimage import data

    folder.mkdir()
    bgr = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    mask = np.zeros(bgr.shape[:2], np.uint8)
    cv2.ellipse(mask, (200, 300), (130, 230), 0, 0, 360, 255, -1)
    paths = [folder / f"astronaut_{i:03d}.jpg" for i in range(count)]
    for path in paths:
        cv2.imwrite(str(path), bgr)
        if with_masks:
            cv2.imwrite(str(path.with_name(f"{path.stem}_mask.png")), mask)
    return paths


def _end_to_end(photos: list[Path], predictor: Predictor, out: Path, batch_size: int, args: argparse.Namespace) -> str:
    """``--repeats`` runs of :func:`predict_files` over ``photos``: the best and slowest wall time
    per image and the best run's stages, as one line."""
    runs: list[tuple[float, RunSummary]] = []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        summary = predict_files(
            photos, predictor, out / str(repeat), batch_size=batch_size, progress=False, writers=args.writers
        )
        if len(summary.written) != len(photos):
            raise RuntimeError(f"the benchmark's predictions failed: {summary.failed}")
        runs.append((1000.0 * (time.perf_counter() - start) / len(photos), summary))
    best, summary = min(runs, key=lambda run: run[0])
    stages = ", ".join(f"{name} {ms:.0f}" for name, ms in summary.timings_ms.items())
    return f"{best:.0f} ms/image (slowest run {max(ms for ms, _ in runs):.0f}; stages: {stages})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="munet bench predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="cpu", help="preset or YAML file of an untrained model (default cpu)")
    parser.add_argument("--checkpoint", help="a checkpoint, export or 'shipped' to time instead of --config's")
    parser.add_argument("--images", type=int, default=16, help="images per end-to-end run")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--fit-steps", type=int, default=FitSettings.steps, help="0: no run with masks")
    parser.add_argument("--writers", type=int, default=WRITERS, help="threads writing outputs")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    fit = FitSettings(steps=args.fit_steps) if args.fit_steps > 0 else None
    with tempfile.TemporaryDirectory(prefix="munet-bench-predict-") as tmp:
        tmp = Path(tmp)
        checkpoint = shipped_model() if args.checkpoint == "shipped" else args.checkpoint
        if checkpoint is None:
            config = load_config(args.config)
            checkpoint = tmp / "checkpoint"
            save_checkpoint(checkpoint, step=0, model=MuNet(config, build_body_model(config.body)), config=config)
        predictor = Predictor.from_checkpoint(checkpoint, device, fit)
        config = predictor.config
        photos = _write_photos(tmp / "plain", args.images, with_masks=False)
        masked = _write_photos(tmp / "masked", args.images, with_masks=True) if fit else []
        crop = person_crop(photos[0], predictor.input_size, DISPLAY_SIZE)
        print(
            f"[{args.checkpoint or args.config}] {config.model.encoder}, {predictor.input_size} px crops, "
            f"device {device}, torch threads {torch.get_num_threads()}, {args.writers} writer thread(s), "
            f"{args.images} images of 512² px"
        )
        for batch_size in args.batch_sizes:
            images = np.repeat(crop.image[None], batch_size, axis=0)
            K = np.repeat(crop.K[None], batch_size, axis=0)
            predictor(images, K)
            forward = 1000.0 * min(timeit.repeat(lambda: predictor(images, K), number=1, repeat=args.repeats))
            line = (
                f"  batch {batch_size:>3}: forward {forward / batch_size:.0f} ms/image; "
                f"end to end {_end_to_end(photos, predictor, tmp / f'out_{batch_size}', batch_size, args)}"
            )
            if args.fit_steps > 0:
                fitted = _end_to_end(masked, predictor, tmp / f"fit_{batch_size}", batch_size, args)
                line += f"; with a mask ({args.fit_steps} fit steps) {fitted}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
