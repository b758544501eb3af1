"""The ``munet`` command (also ``python -m munet``): ``munet [--verbose] COMMAND [ARGS...]``, every
job's one command line.

``--verbose`` keeps the informational output of the libraries underneath (Ray Data, Ray Train,
Warp), which the console leaves out by default (:mod:`munet.console`; same as ``MUNET_VERBOSE=1``).

Each command is a module with a ``main(argv) -> int`` function, in the package that owns the job;
add it to :data:`COMMANDS`. The scripts ``jobs/*.py`` and ``sweeps/tune_mutual.py`` (for
``ray job submit``) and ``python -m munet.{body,data,bench,cluster}`` call the same functions.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from munet.console import VERBOSE_ENV

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("munet.demo", "synthetic data, training on a local Ray (2 workers), evaluation, report"),
    "make-shards": ("munet.data.make_shards", "generate synthetic clothed-human shards with Ray Data"),
    "data": ("munet.data.cli", "check a shard folder against its manifest, or preview its samples"),
    "convert": (
        "munet.convert.cli",
        "convert 3DPW, Human3.6M, MPI-INF-3DHP, THuman2, CAPE or RenderPeople to shards",
    ),
    "train": ("munet.train.cli", "train MuNet with Ray Train (DDP), locally or on a cluster; resume a run"),
    "evaluate": ("munet.eval.cli", "evaluate a checkpoint on held-out shards: metrics, report, pictures"),
    "predict": ("munet.predict.cli", "reconstruct the people in image files with a trained model"),
    "export": ("munet.checkpoint.export", "write a checkpoint's model without its training state"),
    "sweep": ("munet.tune.cli", "sweep the mutualistic loss weights and schedules (Ray Tune + Optuna)"),
    "ablation": ("munet.tune.ablation_cli", "ablate the mutualistic mechanism, same compute, over seeds"),
    "body": ("munet.body.cli", "body models: sizes, Anny cache preparation, SMPL .pkl to .npz"),
    "bench": ("munet.bench.cli", "run a benchmark of one part (munet bench --help lists them)"),
    "cluster": ("munet.cluster.cli", "check cluster YAMLs offline, or print their storage locations"),
}
"""Command name → (module with ``main(argv) -> int``, one-line description)."""


def usage() -> str:
    """The text of ``munet --help``: how to call it and every command with its description."""
    lines = ["usage: munet [--verbose] COMMAND [ARGS...]   (munet COMMAND --help for its arguments)", ""]
    lines += ["--verbose: keep the libraries' informational output (Ray Data, Ray Train, Warp)", "", "commands:"]
    lines += [f"  {name:<12} {description}" for name, (_, description) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv`` (default: the command line) to its command; returns the exit code
    (2 without a command or with an unknown one)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--verbose":
        os.environ[VERBOSE_ENV] = "1"  # read by munet.console here and in the Ray processes started
        argv = argv[1:]
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if not argv or argv[0] not in COMMANDS:
        problem = "no command given" if not argv else f"unknown command {argv[0]!r}"
        print(f"munet: {problem}\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
