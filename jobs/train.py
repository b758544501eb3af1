"""Train MuNet on Ray: ``python jobs/train.py --out runs/demo [--data DIR] [--workers 2] [--steps 200]``.

See ``python jobs/train.py --help``; the logic lives in :mod:`munet.train.cli`.
"""

import sys

from munet.train.cli import main

if __name__ == "__main__":
    sys.exit(main())
