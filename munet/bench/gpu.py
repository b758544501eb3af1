"""Benchmark: the training step on one accelerator, by precision and batch size.

    munet bench gpu --prepare DIR [--config small] [--data SHARDS] [--samples 32]
    munet bench gpu --inputs DIR [--batches 8 32 128] [--precisions fp32 bf16] [--steps 20]
                    [--device cuda] [--json FILE]

``--prepare`` (on a machine with the whole project: the body model, the generator) writes what
the measurement needs into DIR: ``model/`` (a checkpoint of a new network with its templates,
:mod:`munet.checkpoint.state`) and ``samples.npz`` (decoded samples of the decoded-sample contract,
:mod:`munet.data.contract`, from ``--data`` or rendered here). DIR is a few tens of MB.

``--inputs DIR`` (on the GPU machine) needs no Ray, body model or generator: torch, numpy, scipy,
PyYAML, trimesh and PyTorch3D (the network's rotation conversions and the losses' nearest
neighbours). For each precision and per-device batch it trains ``--steps`` steps after
``--warmup`` (the same :func:`munet.train.step.training_step` and
:class:`munet.train.optim.OptimizerStep` as ``munet train``, augmentation included) and reports:

- samples/s of the training step (forward, losses, backward, optimiser), timed over the measured
  steps with the device synchronised at both ends;
- peak device memory (``torch.cuda.max_memory_allocated``);
- the share of the time the step waited for its batch: a host thread assembles the batches from
  ``samples.npz`` (random picks, stacking, pinned memory) two steps ahead, as the data loader's
  last stage does; the decoding itself is measured by ``munet bench data``.

A batch that does not fit is reported as ``out of memory`` and the rest goes on. On a CPU
(``--device cpu``) the same runs, without memory figures.
"""

from __future__ import annotations

import argparse
import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from munet.checkpoint.load import model_from_checkpoint
from munet.checkpoint.state import TrainingState, load_checkpoint, save_checkpoint
from munet.config import apply_overrides, load_config
from munet.train.optim import OptimizerStep, build_optimizer
from munet.train.precision import resolve_precision
from munet.train.step import step_generator, training_step

MODEL_DIR = "model"
SAMPLES_FILE = "samples.npz"


@dataclass
class Measurement:
    """One row of the benchmark: a precision and per-device batch size, and what it gave.

    Attributes:
        precision: ``train.precision`` as run (``fp32``, ``bf16``, ``fp16``).
        batch: samples per step.
        samples_per_s: training throughput (NaN when it did not fit).
        step_ms: milliseconds per step.
        peak_memory_gib: peak allocated device memory, GiB (NaN on the CPU).
        data_wait_frac: share of the measured time spent waiting for the next batch.
        error: ``"out of memory"`` or ``""``.
    """

    precision: str
    batch: int
    samples_per_s: float
    step_ms: float
    peak_memory_gib: float
    data_wait_frac: float
    error: str = ""


def prepare(out: Path, config_name: str, overrides: list[str], data: str | None, samples: int) -> None:
    """Write ``out/model`` (a new network's checkpoint) and ``out/samples.npz`` (``samples``
    decoded samples from the shard folder ``data``, or rendered here when ``None``)."""
    import tempfile

    from munet.body import build_body_model
    from munet.data.decode import Decoder, iter_samples
    from munet.data.generate import GenerationSettings, generate_shards_here
    from munet.model import MuNet

    config = load_config(config_name, overrides)
    torch.manual_seed(config.train.seed)
    model = MuNet(config, build_body_model(config.body))
    save_checkpoint(out / MODEL_DIR, step=0, model=model, config=config)
    decoder = Decoder.from_config(config.data, augment=False)
    with tempfile.TemporaryDirectory() as tmp:
        if data is None:
            data = str(Path(tmp) / "shards")
            settings = GenerationSettings(
                num_samples=samples,
                seed=config.data.seed,
                image_size=max(config.data.image_size, 128),
                samples_per_shard=samples,
                cloth_points=config.data.cloth_points,
            )
            generate_shards_here(data, settings, body_config=config.body)
        decoded = [sample for sample, _ in zip(iter_samples(data, decoder), range(samples))]
    if not decoded:
        raise SystemExit(f"{data} holds no samples")
    np.savez(out / SAMPLES_FILE, **{key: np.stack([s[key] for s in decoded]) for key in decoded[0]})
    print(f"wrote {out / MODEL_DIR} and {len(decoded)} samples in {out / SAMPLES_FILE}")


def _batches(
    samples: dict[str, np.ndarray], size: int, pin: bool, seed: int, stop: threading.Event
) -> queue.Queue[dict[str, torch.Tensor]]:
    """A queue that a daemon thread keeps two batches ahead: ``size`` random samples, stacked,
    as (pinned, when ``pin``) host tensors."""
    ready: queue.Queue[dict[str, torch.Tensor]] = queue.Queue(maxsize=2)
    count = len(next(iter(samples.values())))

    def fill() -> None:
        rng = np.random.default_rng(seed)
        while not stop.is_set():
            pick = rng.integers(count, size=size)
            batch = {key: torch.from_numpy(np.ascontiguousarray(value[pick])) for key, value in samples.items()}
            if pin:
                batch = {key: value.pin_memory() for key, value in batch.items()}
            while not stop.is_set():
                try:
                    ready.put(batch, timeout=0.1)
                    break
                except queue.Full:
                    continue

    threading.Thread(target=fill, daemon=True).start()
    return ready


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    state: TrainingState,
    samples: dict[str, np.ndarray],
    device: torch.device,
    precision: str,
    batch: int,
    steps: int,
    warmup: int,
) -> Measurement:
    """Train ``warmup`` + ``steps`` steps of a new copy of the prepared network (``state``) on
    ``device`` at ``precision`` with batches of ``batch`` drawn from ``samples``; the figures
    cover the last ``steps``."""
    config = apply_overrides(state.config, [f"train.precision={precision}", f"train.batch_size={batch}"])
    resolved = resolve_precision(precision, device)
    stop = threading.Event()
    try:
        model = model_from_checkpoint(state, config).to(device)
        optimizer, scheduler = build_optimizer(model, config)
        stepper = OptimizerStep(model, optimizer, scheduler, config.train, device)
        ready = _batches(samples, batch, device.type == "cuda", config.train.seed, stop)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        wait = 0.0
        for step in range(1, warmup + steps + 1):
            if step == warmup + 1:
                _synchronize(device)
                wait, start = 0.0, time.perf_counter()
            tick = time.perf_counter()
            host = ready.get()
            wait += time.perf_counter() - tick
            loss, _ = training_step(model, host, step, config, step_generator(config.train.seed, step))
            stepper(loss, step)
        _synchronize(device)
        elapsed = time.perf_counter() - start
    except torch.OutOfMemoryError:
        nan = float("nan")
        return Measurement(resolved, batch, nan, nan, nan, nan, "out of memory")
    finally:
        stop.set()
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return Measurement(resolved, batch, steps * batch / elapsed, 1000 * elapsed / steps, peak, wait / elapsed)


def _rows(measurements: list[Measurement]) -> Iterator[str]:
    yield "| precision | batch | samples/s | ms/step | peak memory GiB | data wait |"
    yield "|---|---:|---:|---:|---:|---:|"
    for m in measurements:
        if m.error:
            yield f"| {m.precision} | {m.batch} | {m.error} | | | |"
        else:
            yield (
                f"| {m.precision} | {m.batch} | {m.samples_per_s:.1f} | {m.step_ms:.1f} | "
                f"{m.peak_memory_gib:.2f} | {100 * m.data_wait_frac:.1f}% |"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="munet bench gpu", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--prepare", type=Path, metavar="DIR", help="write the model and samples into DIR")
    what.add_argument("--inputs", type=Path, metavar="DIR", help="measure with what --prepare wrote in DIR")
    parser.add_argument("--config", default="small", help="preset or YAML (with --prepare)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data", help="shard folder to take the samples from (with --prepare; default: render)")
    parser.add_argument("--samples", type=int, default=32, help="samples to store (with --prepare)")
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32, 128], help="per-device batch sizes")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], help="train.precision values")
    parser.add_argument("--steps", type=int, default=20, help="measured steps per row")
    parser.add_argument("--warmup", type=int, default=5, help="steps before the measurement")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.prepare is not None:
        prepare(args.prepare, args.config, args.overrides, args.data, args.samples)
        return
    if not (args.inputs / SAMPLES_FILE).is_file() or not (args.inputs / MODEL_DIR).is_dir():
        raise SystemExit(f"{args.inputs} lacks {MODEL_DIR}/ or {SAMPLES_FILE}: write them with --prepare first")
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"training step on {name}, torch {torch.__version__}, {args.steps} steps after {args.warmup}:")
    state = load_checkpoint(args.inputs / MODEL_DIR, map_location="cpu")
    with np.load(args.inputs / SAMPLES_FILE, allow_pickle=False) as archive:
        samples = {key: archive[key] for key in archive.files}
    measurements = []
    for precision in args.precisions:
        for batch in args.batches:
            measurements.append(measure(state, samples, device, precision, batch, args.steps, args.warmup))
            print(list(_rows(measurements))[-1], flush=True)
    print("\n".join(_rows(measurements)))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(m) for m in measurements], indent=1))
