"""``python -m munet.body``: the same as ``munet body`` (:func:`munet.body.cli.main`)."""

import sys

from munet.body.cli import main

if __name__ == "__main__":
    sys.exit(main())
