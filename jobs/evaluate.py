"""``munet evaluate`` as a script: ``python jobs/evaluate.py ARGS`` (e.g. under ``ray job submit``).

Same arguments and exit codes as ``munet evaluate`` (see ``--help``); the command line lives in
:mod:`munet.eval.cli`.
"""

import sys

from munet.eval.cli import main

if __name__ == "__main__":
    sys.exit(main())
