"""``munet demo`` as a script: ``python jobs/demo.py ARGS`` (e.g. under ``ray job submit``).

Same arguments and exit codes as ``munet demo`` (see ``--help``); the command line lives in
:mod:`munet.demo`.
"""

import sys

from munet.demo import main

if __name__ == "__main__":
    sys.exit(main())
