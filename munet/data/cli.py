"""``munet data`` (also ``python -m munet.data``): shard-folder tools.

``munet data check DIR_OR_URI``: validate every shard against the manifest (exit 1 on problems).
``munet data preview DIR_OR_URI --out grid.png [--num 6]``: contact sheet.
Shards are made by ``munet make-shards``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``munet data``; returns the exit code (1 when a check finds problems or a preview fails)."""
    parser = argparse.ArgumentParser(
        prog="munet data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate shards, checksums and every sample")
    check.add_argument("location", help="shard folder or URI (file://, s3://, gs://...)")
    preview = sub.add_parser("preview", help="write a contact sheet PNG")
    preview.add_argument("location", help="shard folder or URI")
    preview.add_argument("--out", required=True, help="output PNG path")
    preview.add_argument("--num", type=int, default=6, help="number of samples (rows)")
    args = parser.parse_args(argv)

    if args.command == "check":
        from munet.data.check import check_shards

        report = check_shards(args.location)
        print(report.summary())
        return 0 if report.ok else 1
    from munet.data.preview import make_contact_sheet
    from munet.data.shards import ShardError

    try:
        print(f"wrote {make_contact_sheet(args.location, args.out, args.num)}")
    except ShardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
