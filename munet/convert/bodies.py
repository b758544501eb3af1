"""The user's gendered body models for the converters (3DPW, CAPE: SMPL male and female)."""

from __future__ import annotations

import os
from typing import Any

from munet.convert.output import ConvertError


class GenderedBodies:
    """The male and female models of one type, checked at once (a missing file is a clear
    :class:`ConvertError` before anything is converted) and loaded when first needed.

    Args:
        model_dir: the folder given with ``--body-models``.
        dataset: the data set's name, for messages.
        model_type: ``smpl``, ``smplh`` or ``smplx``.
        num_betas: shape coefficients of the models.
    """

    def __init__(
        self, model_dir: str | os.PathLike | None, dataset: str, model_type: str = "smpl", num_betas: int = 10
    ):
        from munet.body.smplx_backend import find_model_file

        self.model_dir, self.model_type, self.num_betas = model_dir, model_type, num_betas
        self.hint = f"{dataset} needs the gendered {model_type.upper()} models (--body-models)"
        self.models: dict[str, Any] = {}
        for gender in ("male", "female"):
            try:
                find_model_file(model_dir, model_type, gender)
            except (FileNotFoundError, ValueError) as exc:
                raise ConvertError(f"{self.hint}: {exc}") from exc

    def get(self, gender: str) -> Any:
        """The :class:`~munet.body.smplx_backend.SMPLXBody` of ``gender`` (``male``/``female``)."""
        from munet.body.smplx_backend import SMPLXBody

        if gender not in self.models:
            try:
                self.models[gender] = SMPLXBody(self.model_dir, self.model_type, gender, self.num_betas)
            except (FileNotFoundError, ValueError) as exc:
                raise ConvertError(f"{self.hint}: {exc}") from exc
        return self.models[gender]
