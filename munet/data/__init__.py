"""The data engine: synthetic clothed humans, rendering, cameras and the WebDataset shard format.

- :mod:`~munet.data.synth` — procedural clothed humans (Anny body + garments, one watertight surface).
- :mod:`~munet.data.camera` — random perspective cameras and square crops (OpenCV convention).
- :mod:`~munet.data.render` — headless OpenGL (EGL) rendering: RGB, mask, normals, depth.
- :mod:`~munet.data.scene` — a rendered view's random light and background.
- :mod:`~munet.data.schema` — one sample's members and their encoding (``SCHEMA_VERSION``).
- :mod:`~munet.data.shards` — shard folders on disks and object stores, atomic writer, manifest.
- :mod:`~munet.data.decode` — raw samples → training arrays; the plain (Ray-free) reader.
- :mod:`~munet.data.ray_dataset` — Ray Data datasets of decoded samples (training's stream).
- :mod:`~munet.data.generate` — the generation job (Ray Data); ``munet make-shards`` runs it
  (:mod:`~munet.data.make_shards`).
- :mod:`~munet.data.check`, :mod:`~munet.data.preview` — ``munet data check|preview``
  (:mod:`~munet.data.cli`).
"""
