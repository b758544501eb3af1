"""Prediction on image files: person crop and intrinsics, batched inference, meshes, overlay and
JSON per image; ``munet predict`` on the command line (:mod:`munet.predict.cli`)."""

from munet.predict.crop import ImageError, PersonCrop, person_crop, read_image
from munet.predict.run import Prediction, Predictor, RunSummary, predict_files

__all__ = [
    "ImageError",
    "PersonCrop",
    "Prediction",
    "Predictor",
    "RunSummary",
    "person_crop",
    "predict_files",
    "read_image",
]
