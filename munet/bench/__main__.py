"""``python -m munet.bench``: the same as ``munet bench`` (:func:`munet.bench.cli.main`)."""

import sys

from munet.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
