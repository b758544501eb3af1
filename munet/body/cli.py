"""``munet body`` (also ``python -m munet.body``): body-model commands.

``munet body info [--smpl-dir DIR --smpl-type smpl]``: print each backend's sizes.
``munet body prepare [--config FILE]``: build Anny's caches for the body and the coarse
template topology once (about 6 minutes on a fresh machine), so later runs start in seconds.
``munet body convert FILE.pkl [--out FILE.npz] [--trust-pickle]``: write an SMPL-family
model's arrays to ``.npz``, the form read without unpickling (``--trust-pickle`` unpickles the
file with ``pickle``, running any code it holds: only for a file from the model's authors, e.g. the
original SMPL files with ``chumpy`` objects).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from munet.body import build_body_model
from munet.body.anny_backend import load_anny
from munet.config import BodyConfig, load_config
from munet.console import setup_console


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``munet body``; returns the exit code (1 when ``convert`` cannot read or write)."""
    parser = argparse.ArgumentParser(
        prog="munet body", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="vertex, face and joint counts of the body backends")
    info.add_argument("--topology", default=BodyConfig.topology, help="Anny topology")
    info.add_argument("--smpl-dir", help="folder with licensed SMPL-family files (optional)")
    info.add_argument("--smpl-type", default="smpl", choices=["smpl", "smplh", "smplx"])
    prepare = sub.add_parser("prepare", help="build the Anny caches a configuration needs")
    prepare.add_argument("--config", help="YAML config or preset name (default: built-in defaults)")
    convert = sub.add_parser("convert", help="write an SMPL-family .pkl model as .npz (read without unpickling)")
    convert.add_argument("file", help="the model file (.pkl)")
    convert.add_argument("--out", help="the .npz to write (default: FILE with the suffix .npz)")
    convert.add_argument(
        "--trust-pickle",
        action="store_true",
        help="unpickle FILE with pickle, which runs any code it holds (only for a file "
        "from the model's authors); default: the restricted reader that admits "
        "numpy/scipy arrays only",
    )
    args = parser.parse_args(argv)
    setup_console(timestamps=False)
    if args.command == "prepare":
        _prepare(args.config)
        return 0
    if args.command == "convert":
        from munet.body.smplx_backend import convert_to_npz

        try:
            written = convert_to_npz(args.file, args.out, trust_pickle=args.trust_pickle)
        except (OSError, ValueError) as exc:
            parser.exit(1, f"error: {exc}\n")
        print(f"wrote {written}")
        return 0

    configs = [BodyConfig(backend="anny", topology=args.topology)]
    if args.smpl_dir:
        configs.append(BodyConfig(backend="smplx", model_dir=args.smpl_dir, model_type=args.smpl_type))
    print(f"{'backend':<8} {'topology':<24} {'vertices':>9} {'faces':>7} {'joints':>6} {'pose':>5} {'shape':>5}")
    for config in configs:
        body = build_body_model(config)
        topology = config.topology if config.backend == "anny" else config.model_type
        print(
            f"{config.backend:<8} {topology:<24} {body.num_vertices:>9} {body.num_faces:>7} "
            f"{len(body.joint_names):>6} {body.pose_dim:>5} {body.shape_dim:>5}"
        )
    if not args.smpl_dir:
        print("smplx    (give --smpl-dir DIR with your licensed SMPL/SMPL-X files to list it)")
    return 0


def _prepare(config_path: str | None) -> None:
    """Build the Anny caches of ``config_path``'s body and coarse template topologies."""
    config = load_config(config_path)
    if config.body.backend != "anny":
        print(f"body backend {config.body.backend!r} needs no preparation")
        return
    for topology in (config.body.topology, config.graph.coarse_topology):
        start = time.perf_counter()
        model = load_anny(topology, config.body.cache_dir)
        print(
            f"anny {topology}: {model.template_vertices.shape[0]} vertices ready ({time.perf_counter() - start:.0f} s)"
        )
