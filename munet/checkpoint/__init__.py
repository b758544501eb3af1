"""Checkpoints: one folder (``state.pt`` + ``config.yaml``) that training writes and evaluation,
prediction, sweeps and export read.

- :mod:`munet.checkpoint.state` — the file: save, read safely (``weights_only``), restore a run.
- :mod:`munet.checkpoint.find` — run storage (local or object store) and which checkpoint to use.
- :mod:`munet.checkpoint.load` — the network of a checkpoint, fit checks, a trained model without
  the file paths its configuration names.
- :mod:`munet.checkpoint.model_file` — the model file: weights, templates and configuration in one
  safetensors file (no pickle), written by ``munet export``.
- :mod:`munet.checkpoint.shipped` — the shipped model (``munet/weights``), ``munet predict``'s default.
- :mod:`munet.checkpoint.export` — ``munet export``: the model without its training state.

Sub-modules are imported on demand, so that ``import munet.checkpoint`` stays light.
"""
