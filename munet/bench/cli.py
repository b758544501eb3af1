"""``munet bench NAME [ARGS...]`` (also ``python -m munet.bench``): runs ``munet.bench.NAME.main(ARGS)``.

Every module of this package with a ``main(argv)`` function is a benchmark; add a module to add one.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Sequence

import munet.bench

_NOT_BENCHMARKS = ("cli",)
"""Modules of this package that are not benchmarks."""


def available() -> list[str]:
    """Names of the benchmark modules in this package."""
    return sorted(
        m.name
        for m in pkgutil.iter_modules(munet.bench.__path__)
        if not m.name.startswith("_") and m.name not in _NOT_BENCHMARKS
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``munet bench``: dispatch ``argv`` (default: the command line) to the named benchmark;
    returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="munet bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=available(), metavar="NAME", help=f"the benchmark: {', '.join(available())}")
    parser.add_argument(
        "args", nargs=argparse.REMAINDER, metavar="ARGS", help="the benchmark's own arguments (munet bench NAME --help)"
    )
    args = parser.parse_args(argv)
    importlib.import_module(f"munet.bench.{args.name}").main(args.args)
    return 0
