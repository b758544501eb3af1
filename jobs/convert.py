"""``munet convert`` as a script: ``python jobs/convert.py ARGS`` (e.g. under ``ray job submit`` with
``--workers N`` and an object-store ``--out``).

Same arguments and exit codes as ``munet convert`` (see ``--help``); the command line lives in
:mod:`munet.convert.cli`.
"""

import sys

from munet.convert.cli import main

if __name__ == "__main__":
    sys.exit(main())
