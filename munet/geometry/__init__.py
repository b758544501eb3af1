"""Geometry shared by every layer above: one function per operation, one module per operation (in
the manner of ``pytorch3d.ops``), on batched torch tensors; the functions data generation calls also
take NumPy arrays (computed in float64, returned as NumPy).

Frames: the camera frame is OpenCV's (x right, y down, z forward), metres; intrinsics ``K`` are
in pixels with pixel centres at integer coordinates. Rotations come from ``pytorch3d.transforms``
(axis-angle, 6D, quaternions, Euler angles); nothing here repeats them.

- :func:`project` (:mod:`~munet.geometry.projection`): camera-frame points → pixels, through a
  perspective or an orthographic camera (:func:`orthographic_flag` reads which).
- :func:`face_normals`, :func:`vertex_normals` (:mod:`~munet.geometry.normals`): area-weighted
  normals of triangle meshes.
- :func:`manifold_defects` (:mod:`~munet.geometry.manifold`): why faces are not a closed,
  consistently oriented 2-manifold.
- :func:`uniform_laplacian` (:mod:`~munet.geometry.laplacian`): a per-vertex field minus the mean
  of its graph neighbours.
- :func:`regress_joints` (:mod:`~munet.geometry.regression`): joints from vertices through a
  (dense or sparse) joint regressor.

This is a foundation layer: it imports torch, NumPy and PyTorch3D only, never another part of
``munet``.
"""

from munet.geometry.laplacian import uniform_laplacian
from munet.geometry.manifold import manifold_defects
from munet.geometry.normals import face_normals, vertex_normals
from munet.geometry.projection import MIN_DEPTH, orthographic_flag, project
from munet.geometry.regression import regress_joints

__all__ = [
    "MIN_DEPTH",
    "face_normals",
    "manifold_defects",
    "orthographic_flag",
    "project",
    "regress_joints",
    "uniform_laplacian",
    "vertex_normals",
]
