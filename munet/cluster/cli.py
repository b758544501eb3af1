"""``munet cluster`` (also ``python -m munet.cluster``): check cluster YAMLs offline, or print
their storage locations.

- ``validate [--no-placeholders] FILE...``: one line per problem (``FILE: problem``) or ``FILE: ok``;
  exits 1 if any file has a problem.
- ``env FILE``: ``export MUNET_DATA=... MUNET_RUNS=... MUNET_SWEEPS=...`` lines for ``eval``;
  exits 1 (printing why on stderr) if the file cannot be read or lacks one of them.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from munet.cluster.validate import STORAGE_KEYS, load_cluster_yaml, storage_uris, validate_cluster_yaml

ENV_NAMES = {"data_uri": "MUNET_DATA", "runs_uri": "MUNET_RUNS", "sweeps_uri": "MUNET_SWEEPS"}
"""Shell variable for each ``metadata.munet`` key (the names docs/cluster.md uses)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``munet cluster``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="munet cluster", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("validate", help="check cluster YAMLs against Ray's schema and the project rules")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument(
        "--no-placeholders",
        action="store_true",
        help="also report values still containing REPLACE_ME (use right before `ray up`)",
    )
    env = sub.add_parser("env", help="print the storage URIs of a cluster YAML as shell exports")
    env.add_argument("file", metavar="FILE")
    args = parser.parse_args(argv)

    if args.command == "env":
        return _print_env(args.file)
    return _print_problems(args.files, allow_placeholders=not args.no_placeholders)


def _print_problems(paths: list[str], allow_placeholders: bool) -> int:
    status = 0
    for path in paths:
        problems = validate_cluster_yaml(path, allow_placeholders=allow_placeholders)
        for problem in problems:
            print(f"{path}: {problem}")
        if problems:
            status = 1
        else:
            print(f"{path}: ok")
    return status


def _print_env(path: str) -> int:
    try:
        uris = storage_uris(load_cluster_yaml(path))
    except (OSError, ValueError) as error:
        print(f"{path}: {error}", file=sys.stderr)
        return 1
    missing = [key for key in STORAGE_KEYS if key not in uris]
    if missing:
        print(f"{path}: metadata.munet lacks {', '.join(missing)}", file=sys.stderr)
        return 1
    for key, name in ENV_NAMES.items():
        print(f"export {name}={shlex.quote(uris[key])}")
    return 0
