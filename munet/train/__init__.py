"""Training: the training step shared by every trainer, a local trainer, and Ray Train.

- :func:`munet.train.step.training_step` — one batch → losses (the one place where this happens).
- :func:`munet.train.local.train_local` — single-process training for development and tests.
- :mod:`munet.train.distributed` — Ray Data + Ray Train (DDP) training (the driver);
  :mod:`munet.train.worker` — the loop each Ray Train worker runs.

Sub-modules are imported on demand, so that ``import munet.train`` stays light.
"""
