"""Shard-folder tools.

``python -m munet.data check DIR_OR_URI``: validate every shard against the manifest (exit 1 on
problems). ``python -m munet.data preview DIR_OR_URI --out grid.png [--num 6]``: contact sheet.
Shards are made by ``python jobs/make_shards.py``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m munet.data", description=__doc__)
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


if __name__ == "__main__":
    sys.exit(main())
