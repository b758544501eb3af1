"""``munet train`` as a script: ``python jobs/train.py ARGS`` (e.g. under ``ray job submit``).

Same arguments and exit codes as ``munet train`` (see ``--help``); the command line lives in
:mod:`munet.train.cli`.
"""

import sys

from munet.train.cli import main

if __name__ == "__main__":
    sys.exit(main())
