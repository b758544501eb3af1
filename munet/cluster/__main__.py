"""``python -m munet.cluster``: the same as ``munet cluster`` (:func:`munet.cluster.cli.main`)."""

import sys

from munet.cluster.cli import main

if __name__ == "__main__":
    sys.exit(main())
