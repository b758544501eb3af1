"""``munet predict``: reconstruct the people in image files with a trained MuNet.

>>> munet predict photo.jpg photos/ --out predictions/                       # the shipped model
>>> munet predict photo.jpg --checkpoint runs/cpu/train --out predictions/  # a model of yours

Each image gets its own folder ``OUT/<stem>/`` (see :mod:`munet.predict.outputs`; a stem that is
no safe folder name, or one taken by an earlier input of the same call, gets another name, see
:func:`munet.predict.run.output_folders`). Where the person's
mask is known (an RGBA cut-out, or a ``<stem>_mask.<ext>`` file), the predicted meshes are fitted
to it (:mod:`munet.fit`; ``--no-fit`` keeps the network's own); ``--segment`` makes a mask with
GrabCut for images that have none. An image that cannot be used (unreadable, more than
``--max-pixels``, or any failure of its own) is reported on stderr and skipped; the exit code is 0
when every input was predicted, 1 when some failed, 2 when nothing could run (bad arguments, an
``--out`` that is not a writable folder, no images, no usable checkpoint, no renderer). ``--out``
is checked before any work.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from munet.checkpoint.shipped import shipped_model
from munet.data.render import EGLUnavailableError
from munet.fit import FitSettings
from munet.predict.crop import DEFAULT_FOV_DEGREES
from munet.predict.images import IMAGE_SUFFIXES, MASK_SUFFIX, MAX_PIXELS, MAX_SIDE, OPENCV_MAX_PIXELS
from munet.predict.predictor import Predictor, resolve_device
from munet.predict.run import predict_files

_MESSAGE_LIMIT = 400
"""Longest error message printed (characters); longer ones are cut."""


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, cut to a readable length."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def collect_inputs(arguments: Sequence[str]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The image files the arguments name, and the arguments that name none.

    A file is taken as given (whatever its suffix: it is decoded to find out); a folder gives its
    files with an image suffix (:data:`~munet.predict.images.IMAGE_SUFFIXES`, not recursively,
    sorted), leaving out mask companions ``*_mask.*``.

    Returns:
        ``(files, problems)``: problems are ``(argument, reason)`` for missing paths and folders
        without images.
    """
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = sorted(
                f
                for f in path.iterdir()
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not f.stem.endswith(MASK_SUFFIX)
            )
            if not found:
                problems.append((path, f"the folder holds no images (looked for {', '.join(IMAGE_SUFFIXES)})"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append((path, "no such file or folder"))
    return files, problems


def out_problem(out: Path) -> str | None:
    """Why ``out`` cannot take the outputs, or ``None`` when it can.

    ``out`` must be a folder, or a path where one can be created: its nearest existing ancestor is
    a folder in which a file can be created (tried with a nameless temporary file, so nothing is
    left behind and nothing is created when the answer is no).
    """
    existing = out
    try:
        if out.exists() and not out.is_dir():
            return f"{out} is a file, not a folder: give a folder for the outputs (it is created if missing)"
        if out.is_symlink() and not out.exists():
            return f"{out} is a broken symbolic link: give a folder for the outputs"
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            return f"{out} cannot be created: {existing} is a file, not a folder"
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        where = "it" if existing == out else str(existing)
        return (
            f"{out} is not writable: creating a file in {where} failed ({exc.strerror or exc}); "
            "give a folder you can write to"
        )
    return None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``munet predict``."""
    parser = argparse.ArgumentParser(
        prog="munet predict",
        description="Reconstruct the body and clothed meshes of the person in each image with a trained MuNet. "
        "Writes OUT/<image stem>/{body.obj, clothed.obj, scene.glb, overlay.png, prediction.json}.",
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders of images")
    parser.add_argument(
        "--checkpoint",
        help="checkpoint folder (holding state.pt), the state.pt file, a `munet export` folder (holding "
        "model.safetensors), or a run folder (newest checkpoint_*); default: the shipped model "
        "(munet/weights, see its MODEL_CARD.md)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--box",
        type=float,
        nargs=4,
        metavar=("X0", "Y0", "X1", "Y1"),
        help="the person's bounding box in pixels of the original image (same for every input); "
        "default: the image's alpha channel or <stem>_mask.<ext> file, else the whole image",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--focal-px",
        type=float,
        metavar="F",
        help="focal length in pixels of the original image "
        f"(default: a {DEFAULT_FOV_DEGREES:g}° field of view across its longer side)",
    )
    parser.add_argument(
        "--max-side",
        type=int,
        default=MAX_SIDE,
        help=f"downscale images whose longer side exceeds this many pixels first (default {MAX_SIDE})",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=MAX_PIXELS,
        metavar="N",
        help="refuse images of more than N pixels (width × height), checked from the file's header "
        f"before decoding (default {MAX_PIXELS}; at most {OPENCV_MAX_PIXELS})",
    )
    parser.add_argument(
        "--segment",
        action="store_true",
        help="for images without a mask, segment the person with OpenCV GrabCut inside --box (else the "
        "whole image) and fit to that mask; reliable on plain backgrounds, not on cluttered ones",
    )
    parser.add_argument(
        "--no-fit",
        action="store_true",
        help="keep the network's meshes even where a person mask is known (default: fit them to it)",
    )
    parser.add_argument(
        "--fit-steps",
        type=int,
        default=FitSettings.steps,
        help=f"optimisation steps of the fit to the mask (default {FitSettings.steps})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.box is not None and (args.box[2] <= args.box[0] or args.box[3] <= args.box[1]):
        parser.error(
            f"--box {' '.join(f'{v:g}' for v in args.box)} is empty: give X0 Y0 X1 Y1 with X1 > X0 and Y1 > Y0"
        )
    if args.focal_px is not None and not args.focal_px > 0:
        parser.error(f"--focal-px must be positive, got {args.focal_px:g}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.fit_steps < 1:
        parser.error(f"--fit-steps must be at least 1, got {args.fit_steps}")
    if args.max_side < 16:
        parser.error(f"--max-side must be at least 16 pixels, got {args.max_side}")
    if not 1 <= args.max_pixels <= OPENCV_MAX_PIXELS:
        parser.error(f"--max-pixels must be between 1 and {OPENCV_MAX_PIXELS} (OpenCV's limit), got {args.max_pixels}")
    problem = out_problem(args.out)
    if problem is not None:
        parser.error(f"--out {problem}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``munet predict`` with ``argv`` (default: the command line); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_arguments(parser, args)
    files, problems = collect_inputs(args.inputs)
    for path, reason in problems:
        print(f"FAILED {path}: {reason}", file=sys.stderr)
    if not files:
        print("error: no images to predict", file=sys.stderr)
        return 2
    try:
        fit = None if args.no_fit else FitSettings(steps=args.fit_steps)
        checkpoint = shipped_model() if args.checkpoint is None else Path(args.checkpoint)
        predictor = Predictor.from_checkpoint(checkpoint, resolve_device(args.device), fit)
        if args.checkpoint is None:
            print(f"using the shipped model ({checkpoint}, step {predictor.step}; see its MODEL_CARD.md)")
        summary = predict_files(
            files,
            predictor,
            args.out,
            box=args.box,
            focal=args.focal_px,
            batch_size=args.batch_size,
            max_side=args.max_side,
            segment=args.segment,
            checkpoint=str(checkpoint),
            progress=not args.no_progress,
            max_pixels=args.max_pixels,
        )
    except (FileNotFoundError, ValueError, EGLUnavailableError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    failed = problems + summary.failed
    timings = ", ".join(f"{name} {ms:.0f} ms" for name, ms in summary.timings_ms.items())
    print(f"predicted {len(summary.written)} of {len(files)} images into {args.out} (per image: {timings})")
    if summary.renamed:
        print(
            "output folders named otherwise than their image (a name made safe, or taken by an earlier input): "
            + ", ".join(f"{path} -> {folder.name}" for path, folder in summary.renamed)
        )
    if summary.fits:
        before = sum(f.on_mask_before for f in summary.fits) / len(summary.fits)
        after = sum(f.on_mask_after for f in summary.fits) / len(summary.fits)
        print(
            f"fitted {len(summary.fits)} image(s) to their person masks: "
            f"body on the mask {before:.2f} -> {after:.2f} (mean)"
        )
    unfitted = len(summary.written) - len(summary.fits)
    if unfitted and not args.no_fit:
        print(
            f"{unfitted} image(s) had no person mask, so their meshes are the network's alone; an RGBA cut-out, "
            "a <stem>_mask.png file or --segment lets them be fitted"
        )
    if failed:
        print(f"{len(failed)} input(s) failed:", file=sys.stderr)
        for path, reason in failed:
            print(f"  {path}: {reason}", file=sys.stderr)
    return 1 if failed else 0
