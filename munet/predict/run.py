"""A prediction run over image files: crop, predict in batches, write the outputs of each image.

:func:`predict_files` prepares crops one by one (:mod:`munet.predict.crop`), runs a
:class:`~munet.predict.predictor.Predictor` on them in batches (inference and fitting), and writes
each image's files into its own folder (:mod:`munet.predict.outputs`) on worker threads
(:mod:`munet.predict.writer`) while the next batch is cropped and predicted. A file that cannot be
used, or any other failure of one image (or of one batch's forward pass), is reported and skipped:
it never stops the others.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from munet.fit import FitReport
from munet.iterutils import chunked
from munet.predict.crop import PersonCrop, person_crop
from munet.predict.images import MAX_PIXELS, MAX_SIDE, ImageError, check_max_pixels
from munet.predict.predictor import Prediction, Predictor
from munet.predict.writer import OutputWriters

DISPLAY_SIZE = 384
"""Side of each panel of ``overlay.png``, pixels."""
WRITERS = 2
"""Images whose outputs are written at once, by default (:class:`~munet.predict.writer.OutputWriters`),
while the main thread crops and predicts the next batch. Writing an image costs about three times
its share of the network on the CPU, and most of it releases Python's lock: two writers beat one
even on two cores (the network's threads and the writers share them)."""


@dataclass
class RunSummary:
    """The outcome of :func:`predict_files`.

    Attributes:
        written: output folder of every image that succeeded, in input order.
        failed: ``(input, one-line reason)`` of every image that did not.
        timings_ms: per image, mean milliseconds of ``crop`` (read + crop), ``inference`` (the
            image's share of its batch's forward pass), ``fit`` (fitting to its mask; 0 without one)
            and ``export`` (meshes, overlay, JSON: a writer thread's time on the image, not counting
            its wait in the queue), over the successes. Writing overlaps the next images' crops and
            inference, so the stages add up to more than the run's time.
        fits: the fit report of every written image that was fitted to a mask.
        renamed: ``(input, output folder)`` of the written images whose folder is not named after
            their stem (see :func:`output_folders`).
    """

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    fits: list[FitReport] = field(default_factory=list)
    renamed: list[tuple[Path, Path]] = field(default_factory=list)


FALLBACK_NAME = "image"
"""Output folder name of an image whose stem gives no usable name (``..png``, ``...jpg``)."""
_MAX_NAME_BYTES = 200
"""Longest folder name taken from a stem (UTF-8 bytes), leaving room for a ``-N`` suffix."""


def folder_name(path: Path) -> str:
    """A safe output folder name for image ``path``: its stem with separators and unprintable
    characters replaced by ``_``, leading dots and surrounding spaces removed (never ``.``, ``..``
    or a hidden name), cut to 200 bytes; :data:`FALLBACK_NAME` when nothing is left."""
    name = "".join(c if c.isprintable() and c not in "/\\" else "_" for c in path.stem)
    name = name.strip().lstrip(".").strip()
    name = name.encode()[:_MAX_NAME_BYTES].decode(errors="ignore").rstrip()
    return name or FALLBACK_NAME


def output_folders(paths: Sequence[Path], out: Path) -> list[Path]:
    """One distinct folder ``out/<name>`` per input, in input order (:func:`folder_name`); a name
    taken before in this call (compared ignoring case, as on macOS and Windows disks) gets the first
    free suffix ``-2``, ``-3``, …: ``a-2.jpg a.jpg a.png`` → ``a-2``, ``a``, ``a-3``. Every folder
    is a direct child of ``out``."""
    taken: set[str] = set()
    folders = []
    for path in paths:
        base = name = folder_name(path)
        count = 1
        while name.casefold() in taken:
            count += 1
            name = f"{base}-{count}"
        taken.add(name.casefold())
        folders.append(out / name)
    return folders


@dataclass
class _Pending:
    path: Path
    folder: Path
    crop: PersonCrop
    crop_ms: float


@dataclass
class _Queued:
    """An image whose outputs are being written: its crop, prediction, timings so far and the
    writer's future (of its export milliseconds)."""

    pending: _Pending
    prediction: Prediction
    timings: dict[str, float]
    export: Future[float]


def _ms_since(start: float) -> float:
    return 1000.0 * (time.perf_counter() - start)


def _crops(
    paths: Sequence[Path], folders: Sequence[Path], size: int, options: dict[str, Any], summary: RunSummary, bar: tqdm
) -> Iterator[_Pending]:
    """The crop of every usable input; unusable ones are recorded in ``summary`` and reported."""
    for path, folder in zip(paths, folders, strict=True):
        start = time.perf_counter()
        try:
            crop = person_crop(path, size, DISPLAY_SIZE, **options)
        except Exception as exc:  # noqa: BLE001 - one image's failure never stops the others
            _fail(summary, bar, path, exc)
            continue
        yield _Pending(path, folder, crop, _ms_since(start))


def _fail(summary: RunSummary, bar: tqdm, path: Path, exc: Exception) -> None:
    own = isinstance(exc, ImageError) and exc.path == path
    text = exc.reason if own else str(exc)
    if not isinstance(exc, (ImageError, OSError, ValueError)):  # unexpected: say what kind of failure
        text = f"{type(exc).__name__}: {text}" if text.strip() else type(exc).__name__
    message = " ".join(text.split())
    summary.failed.append((path, message))
    tqdm.write(f"FAILED {path}: {message}", file=sys.stderr)
    bar.update()


def _record(queued: _Queued, summary: RunSummary, totals: dict[str, float], bar: tqdm) -> None:
    """Wait for one image's outputs and record the outcome in ``summary`` and ``totals``."""
    pending = queued.pending
    try:
        export_ms = queued.export.result()
    except Exception as exc:  # noqa: BLE001 - one image's failure never stops the others
        _fail(summary, bar, pending.path, exc)
        return
    for stage in ("crop", "inference", "fit"):
        totals[stage] += queued.timings[stage]
    totals["export"] += export_ms
    summary.written.append(pending.folder)
    if pending.folder.name != pending.path.stem:
        summary.renamed.append((pending.path, pending.folder))
    if queued.prediction.fit is not None:
        summary.fits.append(queued.prediction.fit)
    bar.update()


def predict_files(
    paths: Sequence[str | Path],
    predictor: Predictor,
    out: str | Path,
    *,
    box: tuple[float, float, float, float] | None = None,
    focal: float | None = None,
    batch_size: int = 16,
    max_side: int = MAX_SIDE,
    segment: bool = False,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    max_pixels: int = MAX_PIXELS,
    writers: int = WRITERS,
) -> RunSummary:
    """Predict every image and write its outputs into its own folder ``out/<name>/`` (see
    :func:`output_folders` and :func:`munet.predict.outputs.write_outputs`).

    Args:
        paths: image files.
        predictor: the trained network.
        box: the person's box in pixels of each original image (default: see
            :func:`munet.predict.crop.person_crop`).
        focal: focal length in pixels of the original images (default: from a 55° field of view).
        batch_size: images per forward pass.
        max_side: larger images are downscaled to this longer side (pixels) first.
        segment: segment the person with GrabCut in images that have no mask (see
            :func:`munet.predict.crop.person_crop`).
        checkpoint: recorded in each ``prediction.json``.
        progress: show a tqdm progress bar (on stderr).
        max_pixels: images of more pixels are refused before they are decoded.
        writers: images whose outputs are written at once, on threads beside the inference.

    Returns:
        What was written and what failed; a failed image (unreadable, too large, unsupported, box
        outside, a failed forward pass of its batch, outputs that cannot be written) is reported on
        stderr and the run goes on.

    Raises:
        ValueError: ``batch_size`` or ``writers`` below 1, or ``max_pixels`` outside ``[1, 2**30]``.
        EGLUnavailableError: no headless OpenGL to render the overlays (before any image is read).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    check_max_pixels(max_pixels)
    paths = [Path(p) for p in paths]
    out = Path(out)
    folders = output_folders(paths, out)
    summary = RunSummary()
    totals = {"crop": 0.0, "inference": 0.0, "fit": 0.0, "export": 0.0}
    info = {"checkpoint": None if checkpoint is None else str(checkpoint), "step": predictor.step}
    options = {"box": box, "focal": focal, "max_side": max_side, "segment": segment, "max_pixels": max_pixels}
    queue: deque[_Queued] = deque()
    with (
        OutputWriters(DISPLAY_SIZE, writers, backlog=2 * batch_size) as outputs,
        tqdm(total=len(paths), desc="predict", unit="image", disable=not progress) as bar,
    ):
        crops = _crops(paths, folders, predictor.input_size, options, summary, bar)
        for batch in chunked(crops, batch_size):
            start = time.perf_counter()
            try:
                predictions = predictor(
                    np.stack([p.crop.image for p in batch]),
                    np.stack([p.crop.K for p in batch]),
                    [p.crop.mask for p in batch],
                )
            except Exception as exc:  # noqa: BLE001 - the batch's images fail, the others go on
                for pending in batch:
                    _fail(summary, bar, pending.path, exc)
                continue
            fit_ms = [0.0 if p.fit is None else p.fit.milliseconds for p in predictions]
            inference_ms = (_ms_since(start) - sum(fit_ms)) / len(batch)
            for pending, prediction, fit in zip(batch, predictions, fit_ms, strict=True):
                timings = {"crop": pending.crop_ms, "inference": inference_ms, "fit": fit, "batch_size": len(batch)}
                image_info = {**info, "focal_given": focal is not None, "timings_ms": timings}
                export = outputs.submit(pending.folder, pending.path, pending.crop, prediction, image_info)
                queue.append(_Queued(pending, prediction, timings, export))
            while queue and queue[0].export.done():  # in input order
                _record(queue.popleft(), summary, totals, bar)
        while queue:
            _record(queue.popleft(), summary, totals, bar)
    done = max(1, len(summary.written))
    summary.timings_ms = {key: value / done for key, value in totals.items()}
    return summary
