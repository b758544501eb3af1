"""Prediction on image files: person crop and intrinsics, batched inference, meshes, overlay and
JSON per image; ``munet predict`` on the command line (:mod:`munet.predict.cli`)."""

from munet.predict.crop import PersonCrop, person_crop
from munet.predict.images import ImageError, read_image
from munet.predict.predictor import Prediction, Predictor
from munet.predict.run import RunSummary, predict_files

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
