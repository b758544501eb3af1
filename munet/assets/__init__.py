"""Files that ship with the package: the small demo model (see ``munet/assets/README.md``)."""

from __future__ import annotations

from pathlib import Path

SHIPPED_MODEL = Path(__file__).resolve().parent / "munet-small"
"""The model trained by the project's own job on synthetic data (``small`` preset): the default
``--checkpoint`` of ``munet predict``."""
