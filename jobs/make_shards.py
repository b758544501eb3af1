"""``munet make-shards`` as a script: ``python jobs/make_shards.py ARGS`` (e.g. under ``ray job submit``).

Same arguments and exit codes as ``munet make-shards`` (see ``--help``); the command line lives in
:mod:`munet.data.make_shards`.
"""

import sys

from munet.data.make_shards import main

if __name__ == "__main__":
    sys.exit(main())
