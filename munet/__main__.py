"""The ``munet`` command (also ``python -m munet``): ``munet SUBCOMMAND [ARGS...]``.

Each subcommand is a module with a ``main(argv) -> int`` function; add it to :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "predict": ("munet.predict.cli", "reconstruct the people in image files with a trained model"),
    "export": ("munet.checkpoint.export", "write a checkpoint's model without its training state"),
}
"""Subcommand name → (module with ``main(argv) -> int``, one-line description)."""


def _usage() -> str:
    lines = ["usage: munet SUBCOMMAND [ARGS...]   (munet SUBCOMMAND --help for its arguments)", "", "subcommands:"]
    lines += [f"  {name:<10} {description}" for name, (_, description) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv`` (default: the command line) to its subcommand; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if not argv or argv[0] not in SUBCOMMANDS:
        problem = "no subcommand given" if not argv else f"unknown subcommand {argv[0]!r}"
        print(f"munet: {problem}\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[argv[0]][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
