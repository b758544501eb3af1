"""MuNet on Ray: joint 3D human mesh recovery and clothed human reconstruction from one image.

Sub-packages, each with one job:

- :mod:`munet.body` — parametric body models (Anny, SMPL/SMPL-X) behind one interface.
- :mod:`munet.graph` — mesh graphs, the coarse/fine hierarchy, subdivision and graph convolutions.
- :mod:`munet.model` — the image encoder, body GCN, clothed GCN and the joint ``MuNet`` module.
- :mod:`munet.losses` — body, clothed and consistency losses.
- :mod:`munet.data` — the synthetic data engine and the WebDataset shard format.
- :mod:`munet.train` — local and Ray Train (DDP) training, checkpoints, schedules.
- :mod:`munet.metrics` — MPJPE, PA-MPJPE, PVE, Chamfer, P2S, normal consistency.
- :mod:`munet.cluster` — offline validation of the Ray cluster-launcher YAMLs in ``cluster/``.
"""

__version__ = "0.1.0"
