"""MuNet on Ray: joint 3D human mesh recovery and clothed human reconstruction from one image.

Sub-packages, each with one job, from the foundations up (a package imports only those above it
in this list; ``tests/test_layers.py`` enforces the order):

- :mod:`munet.config` — typed configuration; then :mod:`munet.schedules` (scheduled scalars),
  :mod:`munet.iterutils` and :mod:`munet.ray_utils` (small helpers). :mod:`munet.geometry` —
  projection, normals, the manifold check, the uniform Laplacian and joint regression, one
  function each (beside the configuration: it imports no other part of ``munet``).
- :mod:`munet.graph` — mesh graphs, the coarse/fine hierarchy, subdivision and graph convolutions.
- :mod:`munet.body` — parametric body models (Anny, SMPL/SMPL-X) behind one interface.
- :mod:`munet.data` — the synthetic data engine, rendering and the WebDataset shard format.
- :mod:`munet.metrics` — MPJPE, PA-MPJPE, PVE, orientation, Chamfer, P2S, normal consistency.
- :mod:`munet.model` — the image encoder, body GCN, clothed GCN and the joint ``MuNet`` module.
- :mod:`munet.checkpoint` — checkpoints: save, find, load a trained model safely, export.
- :mod:`munet.losses` — body, clothed and consistency losses.
- :mod:`munet.fit` — test-time fitting of predicted meshes to a person mask.
- :mod:`munet.train` — the training step, local and Ray Train (DDP) training.
- :mod:`munet.eval` — evaluation and reports.
- :mod:`munet.predict` — ``munet predict``: photos in, meshes, overlays and JSON out.
- :mod:`munet.tune` — experiments over configurations: Ray Tune + Optuna sweeps of the
  mutualistic weights and schedules, and the ablation of the mechanism.
- :mod:`munet.bench` — benchmarks; :mod:`munet.cluster` — checks of the cluster YAMLs;
  :mod:`munet.demo` — the demo; ``munet/__main__.py`` — the command line, ``munet COMMAND``.
"""

__version__ = "0.1.0"
