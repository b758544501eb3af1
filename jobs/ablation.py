"""``munet ablation`` as a script: ``python jobs/ablation.py ARGS`` (e.g. under ``ray job submit``).

Same arguments and exit codes as ``munet ablation`` (see ``--help``); the command line lives in
:mod:`munet.tune.ablation_cli`.
"""

import sys

from munet.tune.ablation_cli import main

if __name__ == "__main__":
    sys.exit(main())
