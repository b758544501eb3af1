"""``munet convert DATASET --root DIR --out DIR``: public body data sets → MuNet shards.

    munet convert 3dpw --root 3DPW --out shards/3dpw-test --body-models models/ [--split test]
    munet convert h36m --root h36m --out shards/h36m-p2 [--split p2-test|train] [--npz FILE]
    munet convert 3dhp --root mpi_inf_3dhp --out shards/3dhp-test [--split test|train] [--cameras 0 2 4]
    munet convert thuman2 --root THuman2.0 --out shards/thuman2-test --body-models models/ --split test.txt
    munet convert cape --root CAPE --out shards/cape --body-models models/ [--split FILE] [--every 10] [--scans raw]
    munet convert cape --root cape_test --out shards/cape-icon --body-models models/ [--split pose.txt]
    munet convert renderpeople --root renderpeople --out shards/rp-test --body-models models/ --split test.txt

Scanned people (thuman2, cape, renderpeople): ``--split FILE`` is a list of subject names (ICON's
list files; a file whose name contains ``test`` gets the 3 test views 0/120/240°, others 36 views
10° apart), ``--views N`` overrides the number of views, ``--image-size`` defaults to 512;
``--camera orthographic`` (default, ICON's) or ``perspective`` (a far pinhole) records the views'
projection in each sample's camera (see :mod:`munet.convert.scan_views`); ``--scan-faces N``
(thuman2, renderpeople) decimates the scan each view stores to N faces (default 25,000; 0: the
full scan).

cape: ``--root`` holds CAPE's sequences (``--scans raw``: their raw scans, millimetres, as the
clothed surface) or ICON's CAPE test set (``scans/``, ``smpl/``; ``--split`` test150.txt, the
default, or pose.txt), see :mod:`munet.convert.cape` and :mod:`munet.convert.cape_icon`.

Common options: ``--image-size S`` (stored crop side, default 256), ``--every N`` (frame step),
``--samples-per-shard``, ``--overwrite``, ``--workers N`` (N units at once as Ray tasks, e.g. under
``ray job submit -- python jobs/convert.py ...`` on a cluster, writing to an object store). A unit
(sequence, subject/action, camera) that cannot be read is reported and skipped; skipped frames are
counted per reason. Re-running the same command continues: units already converted are kept.
Check the result with ``munet data check OUT``.
What each data set stores: see :mod:`munet.convert.pw3d`, :mod:`munet.convert.h36m`,
:mod:`munet.convert.mpi3dhp`, :mod:`munet.convert.thuman2`, :mod:`munet.convert.cape`,
:mod:`munet.convert.renderpeople`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from munet.console import setup_console
from munet.convert.output import ConvertError, ConvertReport
from munet.convert.scan_views import SCAN_FACES
from munet.data.camera import ORTHOGRAPHIC, PROJECTIONS

DATASETS = ("3dpw", "h36m", "3dhp", "thuman2", "cape", "renderpeople")
SCAN_DATASETS = ("thuman2", "cape", "renderpeople")
"""Rendered scans: ``--split`` is a list file, ``--views`` applies."""
_SPLITS = {"3dpw": ("train", "validation", "test"), "h36m": ("p2-test", "train"), "3dhp": ("train", "test")}
_DEFAULT_SPLIT = {"3dpw": "test", "h36m": "p2-test", "3dhp": "test"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line of ``munet convert``."""
    parser = argparse.ArgumentParser(
        prog="munet convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("--root", required=True, help="the data set's folder, as distributed")
    parser.add_argument("--out", required=True, help="output shard folder or URI")
    parser.add_argument(
        "--split",
        help="3dpw: train|validation|test; h36m: p2-test|train; 3dhp: train|test; thuman2, cape, renderpeople: a "
        "list file of subject names (cape, ICON's test set: test150.txt or pose.txt)",
    )
    parser.add_argument(
        "--body-models",
        help="3dpw, cape: folder with SMPL_MALE and SMPL_FEMALE; thuman2, renderpeople: SMPLX_MALE (.npz or .pkl)",
    )
    parser.add_argument("--image-size", type=int, help="stored crop side, pixels (default 256; scans 512)")
    parser.add_argument("--views", type=int, help="scans: views per subject (default 36, or 3 for a test list)")
    parser.add_argument(
        "--camera",
        choices=PROJECTIONS,
        default=ORTHOGRAPHIC,
        help="scans: the views' camera (default orthographic, as ICON's; perspective: a far pinhole)",
    )
    parser.add_argument(
        "--scan-faces",
        type=int,
        default=SCAN_FACES,
        help=f"thuman2, cape, renderpeople: decimate the scan each view stores to this many faces "
        f"(default {SCAN_FACES:,}; 0: the full scan); images and surface samples always come from the full scan",
    )
    parser.add_argument(
        "--every", type=int, help="keep every n-th frame (default: 3dpw 1, h36m 5, 3dhp train 10/test 1)"
    )
    parser.add_argument(
        "--scans",
        choices=("registered", "raw"),
        help="cape sequences: the clothed surface, registered meshes (default) or raw scans (raw_scans/, mm)",
    )
    parser.add_argument("--npz", help="h36m: the SPIN-style npz in --root, when it holds several")
    parser.add_argument("--cameras", type=int, nargs="+", help="3dhp train: cameras to convert (default all)")
    parser.add_argument("--samples-per-shard", type=int, default=256)
    parser.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="convert this many units at once as Ray tasks, on the cluster of --address / $RAY_ADDRESS or a "
        "local Ray (--out must then be reachable from every node); default 0: in this process",
    )
    parser.add_argument("--address", help="Ray cluster address for --workers (default: $RAY_ADDRESS or a local Ray)")
    args = parser.parse_args(argv)
    if args.image_size is None:
        args.image_size = 512 if args.dataset in SCAN_DATASETS else 256
    if args.scans is not None and args.dataset != "cape":
        parser.error("--scans applies to cape only")
    if args.dataset in SCAN_DATASETS:
        if args.views is not None and not 1 <= args.views <= 360:
            parser.error(f"--views must be in 1 … 360, got {args.views}")
        if args.scan_faces < 0:
            parser.error(f"--scan-faces must be 0 (the full scan) or more, got {args.scan_faces}")
        return _check_common(parser, args)
    args.split = args.split or _DEFAULT_SPLIT[args.dataset]
    if args.split not in _SPLITS[args.dataset]:
        parser.error(f"--split for {args.dataset} must be one of {_SPLITS[args.dataset]}, got {args.split!r}")
    return _check_common(parser, args)


def _check_common(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    if args.image_size <= 0 or (args.every is not None and args.every <= 0) or args.samples_per_shard <= 0:
        parser.error("--image-size, --every and --samples-per-shard must be positive")
    if args.workers < 0:
        parser.error(f"--workers must be 0 or more, got {args.workers}")
    return args


def run(args: argparse.Namespace) -> ConvertReport:
    """Run the converter the arguments name."""
    common = dict(split=args.split, image_size=args.image_size, samples_per_shard=args.samples_per_shard)
    common.update(overwrite=args.overwrite, workers=args.workers)
    if args.dataset in SCAN_DATASETS:
        return _run_scans(args, common)
    if args.dataset == "3dpw":
        from munet.convert.pw3d import convert_3dpw

        return convert_3dpw(args.root, args.out, body_models=args.body_models, every=args.every or 1, **common)
    if args.dataset == "h36m":
        from munet.convert.h36m import convert_h36m

        return convert_h36m(args.root, args.out, npz=args.npz, every=args.every, **common)
    from munet.convert.mpi3dhp import convert_3dhp

    return convert_3dhp(args.root, args.out, every=args.every, cameras=args.cameras, **common)


def _run_scans(args: argparse.Namespace, common: dict) -> ConvertReport:
    """Run a scan converter (thuman2, cape, renderpeople)."""
    common.update(views=args.views, projection=args.camera, scan_faces=args.scan_faces)
    if args.dataset == "thuman2":
        from munet.convert.thuman2 import convert_thuman2

        return convert_thuman2(args.root, args.out, body_models=args.body_models, **common)
    if args.dataset == "cape":
        from munet.convert.cape import convert_cape

        scans = args.scans or "registered"
        return convert_cape(
            args.root, args.out, body_models=args.body_models, every=args.every or 1, scans=scans, **common
        )
    from munet.convert.renderpeople import convert_renderpeople

    return convert_renderpeople(args.root, args.out, body_models=args.body_models, **common)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``munet convert``; returns 0 when something was converted and no unit failed, 1 when a
    unit failed or nothing was converted, 2 for bad input or an occupied output folder."""
    args = parse_args(argv)
    setup_console()
    if args.workers:
        from munet.ray_utils import init_ray

        init_ray(address=args.address)
    try:
        report = run(args)
    except (ConvertError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    if report.manifest is None:
        print("error: nothing was converted", file=sys.stderr)
        return 1
    return 1 if report.failed else 0
