"""The decoded-sample contract: the arrays of one training sample, as every reader produces them
(:mod:`munet.data.decode`) and every trainer consumes them (:mod:`munet.train.step`).

The decoded-sample contract (S = ``data.image_size``, N = ``data.cloth_points``, V/P/B the
trained body model's vertex, pose and shape sizes; float32 unless said otherwise):

==================== ============ ===============================================================
``image``            (3, S, S)    RGB, uint8 in [0, 255]
``mask``             (1, S, S)    uint8 in {0, 1} (zeros where ``has_mask`` is 0)
``K``                (3, 3)       intrinsics in pixels of the S × S image
``orthographic``     ()           1 where ``K`` is an orthographic camera's, 0 for a perspective one
                                  (:func:`munet.geometry.project`; pass it wherever ``K`` goes)
``body_vertices``    (V, 3)       camera frame, metres (zeros where ``has_body_mesh`` is 0)
``body_joints``      (17, 3)      COCO-17, camera frame, metres
``joints_2d``        (17, 2)      pixels of the S × S image
``body_pose``        (P,)         body-model pose parameters
``body_shape``       (B,)         body-model shape parameters
``cloth_points``     (N, 3)       uniform samples of the clothed surface, camera frame, metres
``cloth_normals``    (N, 3)       their outward unit normals
``has_mask``         ()           1 where the sample has a person mask, else 0
``has_body_mesh``    ()           1 where ``body_vertices``/``body_pose``/``body_shape`` are
                                  targets of the trained body model (same topology), else 0
``has_cloth``        ()           1 where the sample has a clothed surface, else 0
``joints_valid``     (17,)        1 for each real 3D joint of ``body_joints``, else 0
``joints_2d_valid``  (17,)        1 for each real 2D joint of ``joints_2d``, else 0
``source``           ()           int64, the index of the sample's source in ``data.sources``
==================== ============ ===============================================================

A target a sample lacks (real data sets hold some targets only, see
:data:`munet.data.schema.TARGETS`) is filled with zeros and flagged 0, so that samples of several
sources stack into one batch and every loss and metric weighs each sample by its flags.

The image and mask stay 8-bit until they reach the training device, a quarter of the bytes of
float32 in Ray's object store and on the way to the GPU: :data:`UINT8_MEMBERS` gives the divisor
that makes them floats there (:func:`munet.train.step.batch_to_tensors`).
"""

from __future__ import annotations

UINT8_MEMBERS = {"image": 255.0, "mask": 1.0}
"""The contract's 8-bit members and the divisor that turns each into float32 on the device: the
image into [0, 1], the mask into {0, 1}."""

FLAGS = ("has_mask", "has_body_mesh", "has_cloth", "joints_valid", "joints_2d_valid")
"""The contract's supervision flags (1: the target is real, 0: filled in)."""
