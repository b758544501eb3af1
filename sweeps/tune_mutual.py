"""``munet sweep`` as a script: ``python sweeps/tune_mutual.py ARGS`` (e.g. under ``ray job submit``).

Same arguments and exit codes as ``munet sweep`` (see ``--help``); the command line lives in
:mod:`munet.tune.cli`.
"""

import sys

from munet.tune.cli import main

if __name__ == "__main__":
    sys.exit(main())
