"""Run a benchmark: ``python -m munet.bench NAME [ARGS...]`` calls ``munet.bench.NAME.main(ARGS)``.

Every module of this package with a ``main(argv)`` function is a benchmark; add a module to add one.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import munet.bench


def _available() -> list[str]:
    """Names of the benchmark modules in this package."""
    return sorted(
        m.name for m in pkgutil.iter_modules(munet.bench.__path__) if not m.name.startswith("_")
    )


def main(argv: list[str] | None = None) -> None:
    """Dispatch ``argv`` (default: the command line) to the named benchmark."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in _available():
        names = ", ".join(_available())
        raise SystemExit(f"usage: python -m munet.bench NAME [ARGS...]; NAME is one of: {names}")
    importlib.import_module(f"munet.bench.{argv[0]}").main(argv[1:])


if __name__ == "__main__":
    main()
