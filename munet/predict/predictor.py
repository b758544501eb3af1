"""A trained MuNet on person crops: :class:`Predictor` runs the network in batches and fits its
meshes to the person's mask where one is known (:mod:`munet.fit`); each crop's result is a
:class:`Prediction` (numpy arrays in the camera frame)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from munet.checkpoint.load import load_trained_model
from munet.config import MuNetConfig
from munet.data.camera import resize_intrinsics
from munet.fit import FitReport, FitSettings, SilhouetteFitter, fit_output
from munet.model import MuNet


@dataclass(frozen=True)
class Prediction:
    """The network's output for one crop (numpy; camera frame = OpenCV, metres).

    Attributes:
        body_vertices: ``(V, 3)`` float32 body mesh.
        body_faces: ``(F, 3)`` int64 its faces.
        cloth_vertices: ``(V_c, 3)`` float32 clothed mesh.
        cloth_faces: ``(F_c, 3)`` int64 its faces.
        joints: ``(17, 3)`` float32 COCO-17 joints of the body.
        weak_camera: ``(3,)`` weak-perspective camera ``(s, t_x, t_y)`` (normalised crop
            coordinates per metre).
        translation: ``(3,)`` camera-frame pelvis, metres.
        fit: how fitting to the person mask went, or ``None`` when the meshes are the network's
            own (no mask, or fitting off).
    """

    body_vertices: np.ndarray
    body_faces: np.ndarray
    cloth_vertices: np.ndarray
    cloth_faces: np.ndarray
    joints: np.ndarray
    weak_camera: np.ndarray
    translation: np.ndarray
    fit: FitReport | None = None


def resolve_device(name: str) -> torch.device:
    """``cpu`` or ``cuda`` as a device.

    Raises:
        ValueError: an unknown name, or ``cuda`` on a machine without a usable CUDA GPU.
    """
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "--device cuda: no CUDA GPU is usable here (torch.cuda.is_available() is False); use --device cpu"
        )
    return torch.device(name)


class Predictor:
    """A trained MuNet in eval mode, predicting from uint8 crops.

    Args:
        model: the network (its device is the predictor's).
        config: the configuration it was trained with.
        step: its training step (reported with each prediction).
        fit: how to fit predictions to person masks when a crop has one (:mod:`munet.fit`);
            ``None`` never fits.
    """

    def __init__(self, model: MuNet, config: MuNetConfig, step: int, fit: FitSettings | None = None):
        self.model = model.eval()
        self.config = config
        self.step = step
        self.device = next(model.parameters()).device
        self.fitter = None if fit is None else SilhouetteFitter.for_model(model, fit)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "cpu", fit: FitSettings | None = None
    ) -> Predictor:
        """Load a checkpoint (folder, ``state.pt`` or run folder; see
        :func:`munet.checkpoint.load.load_trained_model`).

        Raises:
            FileNotFoundError: no checkpoint at ``path``.
            ValueError: the weights do not fit the model the checkpoint's configuration describes.
        """
        model, config, step = load_trained_model(path, device)
        return cls(model, config, step, fit)

    @property
    def input_size(self) -> int:
        """Side S of the crops the network reads: the size it was trained on (``data.image_size``;
        the training decoder resizes every sample to it)."""
        return self.config.data.image_size

    @torch.no_grad()
    def __call__(
        self, images: np.ndarray, K: np.ndarray, masks: Sequence[np.ndarray | None] | None = None
    ) -> list[Prediction]:
        """Predict a batch.

        Args:
            images: ``(B, S, S, 3)`` uint8 RGB crops, ``S`` = :attr:`input_size`.
            K: ``(B, 3, 3)`` their intrinsics in crop pixels.
            masks: per crop, its person mask (square, any size, all masks of one size; the same
                view as the crop) or ``None``. With a fitter, the meshes of crops with a mask are
                fitted to it.
        """
        size = self.input_size
        if images.ndim != 4 or images.shape[1:] != (size, size, 3) or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (B, {size}, {size}, 3), got {images.dtype} {images.shape}")
        if K.shape != (len(images), 3, 3):
            raise ValueError(f"K must have shape ({len(images)}, 3, 3), got {K.shape}")
        pixels = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        K_input = torch.as_tensor(K, dtype=torch.float32, device=self.device)
        output = self.model(pixels, K_input)
        reports: list[FitReport | None] = [None] * len(images)
        if self.fitter is not None and masks is not None and any(m is not None for m in masks):
            mask_size = next(m for m in masks if m is not None).shape[0]
            K_masks = torch.as_tensor(resize_intrinsics(K, mask_size / size), dtype=torch.float32, device=self.device)
            output, reports = fit_output(self.fitter, output, K_input, size, K_masks, masks)
        body_faces = output.body_faces.cpu().numpy().astype(np.int64)
        cloth_faces = output.cloth_faces.cpu().numpy().astype(np.int64)
        arrays = {
            name: getattr(output, name).cpu().numpy()
            for name in ("body_vertices", "cloth_vertices", "body_joints", "weak_camera", "translation")
        }
        return [
            Prediction(
                body_vertices=arrays["body_vertices"][i],
                body_faces=body_faces,
                cloth_vertices=arrays["cloth_vertices"][i],
                cloth_faces=cloth_faces,
                joints=arrays["body_joints"][i],
                weak_camera=arrays["weak_camera"][i],
                translation=arrays["translation"][i],
                fit=reports[i],
            )
            for i in range(len(images))
        ]
