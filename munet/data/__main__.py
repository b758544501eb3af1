"""``python -m munet.data``: the same as ``munet data`` (:func:`munet.data.cli.main`)."""

import sys

from munet.data.cli import main

if __name__ == "__main__":
    sys.exit(main())
